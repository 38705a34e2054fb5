using System.Runtime.CompilerServices;
using System.Threading.Channels;
using AspireTune.Engine.Generation;

namespace AspireTune.FineTuning.Serving;

/// <summary>What one choice of a streamed completion decodes: its prompt and its options (its own seed).</summary>
internal sealed record ChoiceRequest(int Index, IReadOnlyList<int> PromptIds, GenerationOptions Options);

/// <summary>A piece of a streamed choice: a token, or, last for that choice, no token and its finish reason.</summary>
internal readonly record struct ChoicePiece(int Index, GeneratedToken? Token, string? FinishReason);

/// <summary>
/// The choices of one streamed request (n, or n per prompt), decoded together by the model's batched generator and
/// read as one sequence of pieces in the order they were decoded, each naming its choice: what the OpenAI API streams
/// as interleaved chunks whose <c>choices[0].index</c> says which choice they extend.
/// </summary>
internal static class StreamedChoices
{
    public static async IAsyncEnumerable<ChoicePiece> StreamAsync(BatchedGenerator generator, IReadOnlyList<ChoiceRequest> choices,
        [EnumeratorCancellation] CancellationToken ct)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var pieces = Channel.CreateUnbounded<ChoicePiece>(new UnboundedChannelOptions { SingleReader = true });
        // Each pump submits its choice before it first awaits: the choices join the batch in index order, as the
        // non-streamed path submits them, so a seeded request streams the choices it would return whole.
        var pumps = choices.Select(c => PumpAsync(generator, c, pieces.Writer, stop.Token)).ToList();
        _ = Task.WhenAll(pumps).ContinueWith(t => pieces.Writer.TryComplete(t.Exception?.InnerException), CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        try
        {
            await foreach (var piece in pieces.Reader.ReadAllAsync(ct))
                yield return piece;
        }
        finally
        {
            // A client gone mid-stream: the other choices leave the batch at its next step.
            stop.Cancel();
            await Task.WhenAll(pumps).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    private static async Task PumpAsync(BatchedGenerator generator, ChoiceRequest choice, ChannelWriter<ChoicePiece> pieces, CancellationToken ct)
    {
        await foreach (var item in generator.StreamWithFinishAsync(choice.PromptIds, choice.Options, ct))
            await pieces.WriteAsync(new ChoicePiece(choice.Index, item.Token, item.FinishReason), ct);
    }
}
