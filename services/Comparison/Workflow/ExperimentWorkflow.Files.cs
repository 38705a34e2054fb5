using System.Text;
using System.Text.Json;
using AspireTune.Comparison.Curation;
using AspireTune.Comparison.Data;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Comparison;
using AspireTune.Contracts.Datasets;

namespace AspireTune.Comparison.Workflow;

/// <summary>An experiment's split files: written once in the shared dataset format (and the chat format for fine-tuning), read back by id.</summary>
public sealed partial class ExperimentWorkflow
{
    private async Task<ArtifactRef> PutSplitAsync(string prefix, string name, IEnumerable<LabeledExample> items, CancellationToken ct)
    {
        var rows = LabelledJsonl.Write(items.Select(e => e.ToRow() with { Metadata = WithId(e) }));
        return await artifacts.PutAsync(new MemoryStream(rows), prefix, name, "application/jsonl", ct);
    }

    /// <summary>The split in the chat format of hosted fine-tuning APIs, prompted exactly as the fine-tuned candidate will be.</summary>
    private async Task<ArtifactRef> PutChatSplitAsync(string prefix, string name, IEnumerable<LabeledExample> items, ExperimentTask task, CancellationToken ct)
    {
        var lines = items.Select(e => JsonSerializer.Serialize(new
        {
            messages = new[]
            {
                new { role = "user", content = PromptVariants.TrainingPromptFor(e.Input, task) },
                new { role = "assistant", content = e.Expected },
            },
        }));
        return await artifacts.PutAsync(new MemoryStream(Encoding.UTF8.GetBytes(string.Join('\n', lines) + "\n")), prefix, name, "application/jsonl", ct);
    }

    private static Dictionary<string, JsonElement> WithId(LabeledExample e) =>
        new(e.Metadata ?? new Dictionary<string, JsonElement>(), StringComparer.Ordinal) { ["id"] = JsonSerializer.SerializeToElement(ItemId(e)) };

    /// <summary>Items keep the line number they had in the dataset as received: stable across every candidate.</summary>
    public static string ItemId(LabeledExample e) =>
        e.Metadata is not null && e.Metadata.TryGetValue("id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString()! : $"line-{e.Line}";

    private static ArtifactRef Artifact(ArtifactRef? split) => split ?? throw new InvalidOperationException("The experiment has no such split yet.");

    private static CurationReport Curation(Experiment e) => e.Curation!;
}
