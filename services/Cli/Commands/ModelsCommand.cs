using System.CommandLine;
using System.Globalization;
using AspireTune.Cli.Infrastructure;
using AspireTune.FineTuning.Apis;
using Spectre.Console;

namespace AspireTune.Cli.Commands;

/// <summary><c>aspiretune models</c>: the registry of served models (built-in, fine-tuned, imported).</summary>
public static class ModelsCommand
{
    private const string Models = "api/models";

    public static Command Create(CliIo io, ConnectionOptions connection)
    {
        var list = new Command("list", "List registered models with their lineage.");
        list.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var page = await c.GetAsync<ListResponse<ModelResponse>>(Models, ct);
            if (parse.GetValue(connection.Json))
            {
                io.WriteJson(page);
                return ExitCodes.Ok;
            }
            var table = CliIo.Table("id", "source", "architecture", "parameters", "base model", "job", "created (UTC)");
            foreach (var m in page.Data)
                table.AddRow(Markup.Escape(m.Id), Markup.Escape(m.Source), Markup.Escape(m.Architecture ?? ""), m.Parameters.ToString("N0", CultureInfo.InvariantCulture),
                    Markup.Escape(m.Lineage.BaseModel ?? ""), Markup.Escape(m.Lineage.JobId ?? ""), FineTuningCommand.Time(m.CreatedAt));
            io.Write(table);
            return ExitCodes.Ok;
        });

        var path = new Argument<string>("path") { Description = "A Hugging Face model directory (config.json, *.safetensors, tokenizer files) inside the data folder." };
        var name = new Option<string>("--name") { Description = "The id to serve it under.", Required = true };
        var import = new Command("import", "Register a Hugging Face model directory so it can be served and fine-tuned.") { path, name };
        import.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            // A local path is sent absolute: the embedded host resolves it against its data folder otherwise.
            var given = parse.GetValue(path)!;
            var request = new ImportModelRequest { Path = Directory.Exists(given) ? Path.GetFullPath(given) : given, Name = parse.GetValue(name) };
            var model = await c.PostAsync<ImportModelRequest, ModelResponse>($"{Models}/import", request, ct);
            if (parse.GetValue(connection.Json))
                io.WriteJson(model);
            else
                io.Out.MarkupLineInterpolated($"Imported [bold]{model.Id}[/] ({model.Architecture}, {model.Parameters:N0} parameters)");
            return ExitCodes.Ok;
        });

        var id = new Argument<string>("id") { Description = "Model id." };
        var output = new Option<FileInfo?>("--output", "-o") { Description = "Zip file to write (default ./<id>.zip)." };
        var export = new Command("export", "Download a model as a zip of its Hugging Face directory.") { id, output };
        export.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var modelId = parse.GetValue(id)!;
            var target = parse.GetValue(output)?.FullName ?? Path.GetFullPath(string.Concat(modelId.Select(ch => char.IsLetterOrDigit(ch) || ch is '-' or '_' or '.' ? ch : '_')) + ".zip");
            using var response = await c.SendRawAsync(new HttpRequestMessage(HttpMethod.Get, $"{Models}/{Uri.EscapeDataString(modelId)}/export"), ct, HttpCompletionOption.ResponseHeadersRead);
            var total = response.Content.Headers.ContentLength;
            await io.Err.Progress().AutoClear(false).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new DownloadedColumn(), new TransferSpeedColumn())
                .StartAsync(async context =>
                {
                    var task = context.AddTask(Markup.Escape($"export {modelId}"), maxValue: total ?? 1);
                    var temp = target + ".part";
                    await using (var source = await response.Content.ReadAsStreamAsync(ct))
                    await using (var file = File.Create(temp))
                    {
                        var buffer = new byte[1 << 16];
                        int read;
                        while ((read = await source.ReadAsync(buffer, ct)) > 0)
                        {
                            await file.WriteAsync(buffer.AsMemory(0, read), ct);
                            task.Increment(read);
                            if (total is null)
                                task.MaxValue = task.Value + 1;
                        }
                    }
                    File.Move(temp, target, overwrite: true);
                    task.Value = task.MaxValue;
                });
            if (parse.GetValue(connection.Json))
                io.WriteJson(new ExportedFile(modelId, target, new FileInfo(target).Length));
            else
                io.Out.MarkupLineInterpolated($"Wrote [bold]{target}[/] ({new FileInfo(target).Length:N0} bytes)");
            return ExitCodes.Ok;
        });

        var deleteId = new Argument<string>("id") { Description = "Model id." };
        var delete = new Command("delete", "Remove a model from the registry (fine-tuned models' files too; imported directories stay).") { deleteId };
        delete.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            await c.DeleteAsync($"{Models}/{Uri.EscapeDataString(parse.GetValue(deleteId)!)}", ct);
            if (parse.GetValue(connection.Json))
                io.WriteJson(new Deleted(parse.GetValue(deleteId)!, true));
            else
                io.Out.MarkupLineInterpolated($"Deleted [bold]{parse.GetValue(deleteId)}[/]");
            return ExitCodes.Ok;
        });

        return new Command("models", "The model registry: list, import, export, delete.") { list, import, export, delete };
    }

    /// <summary>What <c>models export --json</c> prints (the CLI's own output, not a service shape).</summary>
    public sealed record ExportedFile(string Id, string Path, long Bytes);

    /// <summary>What a delete prints with <c>--json</c>.</summary>
    public sealed record Deleted(string Id, bool Done);
}
