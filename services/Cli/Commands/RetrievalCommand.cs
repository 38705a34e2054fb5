using System.CommandLine;
using System.Globalization;
using AspireTune.Cli.Infrastructure;
using AspireTune.Contracts.Retrieval;
using AspireTune.Retrieval.Apis;
using AspireTune.Retrieval.Ingestion;
using Spectre.Console;

namespace AspireTune.Cli.Commands;

/// <summary><c>aspiretune retrieval</c>: collections, ingestion of local files, neighbour search.</summary>
public static class RetrievalCommand
{
    private const string Collections = "api/retrieval/collections";

    public static Command Create(CliIo io, ConnectionOptions connection)
    {
        var list = new Command("list", "List collections.");
        list.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var collections = await c.GetAsync<List<CollectionInfo>>(Collections, ct);
            if (parse.GetValue(connection.Json))
                io.WriteJson(collections);
            else
                io.Write(Table(collections));
            return ExitCodes.Ok;
        });

        var name = new Argument<string>("name") { Description = "Collection name (lower-case letters, digits, '-', '_')." };
        var embedding = new Option<string?>("--embedding-model") { Description = "local-hashing (default, offline) or a hosted model served by Retrieval:HostedEmbeddings." };
        var dimensions = new Option<int?>("--dimensions") { Description = "Vector size (default Retrieval:DefaultDimensions, 384)." };
        var create = new Command("create", "Create a collection (an existing one with the same settings is kept).") { name, embedding, dimensions };
        create.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var info = await c.PostAsync<CreateCollectionRequest, CollectionInfo>(Collections,
                new CreateCollectionRequest { Name = parse.GetValue(name)!, EmbeddingModel = parse.GetValue(embedding), Dimensions = parse.GetValue(dimensions) }, ct);
            WriteOne(io, info, parse.GetValue(connection.Json));
            return ExitCodes.Ok;
        });

        var showName = new Argument<string>("name") { Description = "Collection name." };
        var show = new Command("show", "Show one collection.") { showName };
        show.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            WriteOne(io, await c.GetAsync<CollectionInfo>($"{Collections}/{Uri.EscapeDataString(parse.GetValue(showName)!)}", ct), parse.GetValue(connection.Json));
            return ExitCodes.Ok;
        });

        var deleteName = new Argument<string>("name") { Description = "Collection name." };
        var delete = new Command("delete", "Delete a collection and its points.") { deleteName };
        delete.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            await c.DeleteAsync($"{Collections}/{Uri.EscapeDataString(parse.GetValue(deleteName)!)}", ct);
            if (parse.GetValue(connection.Json))
                io.WriteJson(new ModelsCommand.Deleted(parse.GetValue(deleteName)!, true));
            else
                io.Out.MarkupLineInterpolated($"Deleted [bold]{parse.GetValue(deleteName)}[/]");
            return ExitCodes.Ok;
        });

        return new Command("retrieval", "Similarity search: collections, ingestion, search.")
        {
            new Command("collections", "Collections of embedded chunks.") { list, create, show, delete },
            Ingest(io, connection),
            Search(io, connection),
        };
    }

    private static Command Ingest(CliIo io, ConnectionOptions connection)
    {
        var collection = new Argument<string>("collection") { Description = "Collection name." };
        var files = new Argument<FileInfo[]>("files") { Description = "Text, Markdown (.md) or JSONL (.jsonl) files; the file name is the document id.", Arity = ArgumentArity.OneOrMore };
        var chunkTokens = new Option<int>("--chunk-tokens") { Description = "Chunk size in cl100k tokens (16-8192).", DefaultValueFactory = _ => 256 };
        var overlap = new Option<int>("--chunk-overlap") { Description = "Tokens repeated between chunks (at most half a chunk).", DefaultValueFactory = _ => 32 };
        var create = new Option<bool>("--create") { Description = "Create the collection first when it does not exist." };
        var batch = new Option<int>("--batch") { Description = "Files per request.", DefaultValueFactory = _ => 16 };
        var command = new Command("ingest", "Chunk, embed and index local files into a collection (a document seen before is replaced when it changed).")
        {
            collection, files, chunkTokens, overlap, create, batch,
        };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var name = parse.GetValue(collection)!;
            var given = parse.GetValue(files)!;
            foreach (var missing in given.Where(f => !f.Exists))
                throw new CliException($"No file at {missing.FullName}.", ExitCodes.Usage);
            if (parse.GetValue(create))
                await c.PostAsync<CreateCollectionRequest, CollectionInfo>(Collections, new CreateCollectionRequest { Name = name }, ct);

            var results = new List<IngestResult>();
            var size = Math.Max(1, parse.GetValue(batch));
            await io.Err.Progress().AutoClear(false).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                .StartAsync(async context =>
                {
                    var task = context.AddTask(Markup.Escape($"ingest into {name}"), maxValue: given.Length);
                    foreach (var chunk in given.Chunk(size))
                    {
                        var documents = new List<DocumentInput>();
                        foreach (var f in chunk)
                            documents.Add(new DocumentInput { Id = f.Name, Text = await File.ReadAllTextAsync(f.FullName, ct), Format = FormatOf(f) });
                        results.Add(await c.PostAsync<IngestDocumentsRequest, IngestResult>($"{Collections}/{Uri.EscapeDataString(name)}/documents",
                            new IngestDocumentsRequest { Documents = documents, ChunkTokens = parse.GetValue(chunkTokens), ChunkOverlapTokens = parse.GetValue(overlap) }, ct));
                        task.Increment(chunk.Length);
                    }
                });
            var total = new IngestResult(name, results.Sum(r => r.Documents), results.Sum(r => r.Unchanged), results.Sum(r => r.Chunks), results.Count == 0 ? 0 : results[^1].Points);
            if (parse.GetValue(connection.Json))
                io.WriteJson(total);
            else
                io.Out.MarkupLineInterpolated($"Ingested {total.Documents} documents ({total.Unchanged} unchanged) as {total.Chunks} chunks; {name} holds {total.Points} points.");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static DocumentFormat FormatOf(FileInfo file) => file.Extension.ToLowerInvariant() switch
    {
        ".md" or ".markdown" => DocumentFormat.Markdown,
        ".jsonl" => DocumentFormat.Jsonl,
        _ => DocumentFormat.Text,
    };

    private static Command Search(CliIo io, ConnectionOptions connection)
    {
        var collection = new Argument<string>("collection") { Description = "Collection name." };
        var query = new Argument<string>("query") { Description = "The text to find neighbours of." };
        var k = new Option<int>("--k", "-k") { Description = "How many neighbours.", DefaultValueFactory = _ => 4 };
        var mode = new Option<SearchMode>("--mode") { Description = "dense (embeddings) or hybrid (BM25 fused with dense).", DefaultValueFactory = _ => SearchMode.Dense };
        var mmr = new Option<bool>("--mmr") { Description = "Re-rank for diversity (maximal marginal relevance)." };
        var command = new Command("search", "Nearest chunks or examples to a query.") { collection, query, k, mode, mmr };
        command.SetServiceAction(io, connection, async (c, parse, ct) =>
        {
            var request = new NeighborsRequest { Text = parse.GetValue(query)!, K = parse.GetValue(k), Mode = parse.GetValue(mode), Mmr = parse.GetValue(mmr) };
            var found = await c.PostAsync<NeighborsRequest, NeighborsResponse>($"{Collections}/{Uri.EscapeDataString(parse.GetValue(collection)!)}/neighbors", request, ct);
            if (parse.GetValue(connection.Json))
            {
                io.WriteJson(found);
                return ExitCodes.Ok;
            }
            var table = CliIo.Table("score", "id", "label", "text");
            foreach (var n in found.Neighbors)
                table.AddRow(n.Score.ToString("0.000", CultureInfo.InvariantCulture), Markup.Escape(n.Id), Markup.Escape(n.Label ?? ""), Markup.Escape(n.Text.Length > 300 ? n.Text[..300] + "..." : n.Text));
            io.Write(table);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void WriteOne(CliIo io, CollectionInfo info, bool json)
    {
        if (json)
            io.WriteJson(info);
        else
            io.Write(Table([info]));
    }

    private static Table Table(IEnumerable<CollectionInfo> collections)
    {
        var table = CliIo.Table("name", "embedding model", "dimensions", "distance", "documents", "points", "index", "created (UTC)");
        foreach (var c in collections)
            table.AddRow(Markup.Escape(c.Name), Markup.Escape(c.EmbeddingModel), c.Dimensions.ToString(CultureInfo.InvariantCulture), c.Distance.ToString(),
                c.Documents.ToString(CultureInfo.InvariantCulture), c.Points.ToString(CultureInfo.InvariantCulture), Markup.Escape(c.Index), c.CreatedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture));
        return table;
    }
}
