using System.Text.RegularExpressions;
using AspireTune.Contracts.Retrieval;
using AspireTune.Retrieval.Apis;
using AspireTune.Retrieval.Data;
using AspireTune.Retrieval.Ingestion;

namespace AspireTune.Retrieval.Search;

/// <summary>
/// What the query endpoints answer: neighbours, a dynamic prompt filled within a token budget, a kNN vote, and
/// retrieval quality on labelled queries. Ranking itself is <see cref="QueryRanker"/>.
/// </summary>
public sealed partial class RetrievalQueries(RetrievalService collections, QueryRanker ranker, KeywordIndexCache keywords, RetrievalDbContext db, Microsoft.Extensions.Options.IOptions<RetrievalOptions> options)
{
    private const int MaxPlaceholderUses = 4;

    private const string DefaultTemplate = "{{context}}\n\n{{examples}}\n\nInput: {{input}}\nOutput:";

    public async Task<NeighborsResponse> NeighborsAsync(string collection, NeighborsRequest request, CancellationToken ct)
    {
        var record = await collections.RequireAsync(collection, ct);
        var hits = await ranker.RankAsync(record, request.Text, request.K, request.Filter, request.Mode, request.Mmr, request.MmrLambda, ct);
        return new NeighborsResponse { Collection = collection, Neighbors = hits.Select(QueryRanker.ToNeighbor).ToList() };
    }

    public async Task<PromptResponse> PromptAsync(string collection, PromptRequest request, CancellationToken ct)
    {
        var record = await collections.RequireAsync(collection, ct);
        var template = string.IsNullOrWhiteSpace(request.Template) ? DefaultTemplate : request.Template;
        if (!template.Contains("{{input}}", StringComparison.Ordinal))
            throw new RetrievalValidationException("template", "The template has no {{input}} placeholder.");
        if (request.TokenBudget is < 1 or > 1_000_000)
            throw new RetrievalValidationException("tokenBudget", $"tokenBudget must be between 1 and 1,000,000; {request.TokenBudget} was given.");
        // Each placeholder copies its text: bound the filled size, not only the template's.
        var maxChars = options.Value.MaxQueryCharacters;
        if (template.Length > maxChars || new[] { "{{input}}", "{{examples}}", "{{context}}" }.Any(p => Occurrences(template, p) > MaxPlaceholderUses))
            throw new RetrievalValidationException("template", $"The template must be at most {maxChars:N0} characters (Retrieval:MaxQueryCharacters) and use each placeholder at most {MaxPlaceholderUses} times.");
        var hits = await ranker.RankAsync(record, request.Input, request.K, request.Filter, request.Mode, request.Mmr, 0.5, ct);

        var examples = new List<QueryRanker.Scored>();
        var passages = new List<QueryRanker.Scored>();
        var prompt = FillTemplate(template, request.Input, examples, passages);
        var tokens = Chunker.CountTokens(prompt);
        if (tokens > request.TokenBudget)
            throw new RetrievalValidationException("tokenBudget", $"The template and input alone take {tokens} tokens, over the budget of {request.TokenBudget}.");
        var leftOut = 0;
        foreach (var hit in hits)
        {
            ct.ThrowIfCancellationRequested();
            var target = hit.Payload.Label is null ? passages : examples;
            target.Add(hit);
            var candidate = FillTemplate(template, request.Input, examples, passages);
            var candidateTokens = Chunker.CountTokens(candidate);
            if (candidateTokens > request.TokenBudget)
            {
                target.RemoveAt(target.Count - 1);
                leftOut++;
                continue;
            }
            prompt = candidate;
            tokens = candidateTokens;
        }
        return new PromptResponse(collection, prompt, tokens, examples.Select(QueryRanker.ToNeighbor).ToList(), passages.Select(QueryRanker.ToNeighbor).ToList(), leftOut);
    }

    private static int Occurrences(string text, string value)
    {
        var count = 0;
        for (var i = text.IndexOf(value, StringComparison.Ordinal); i >= 0; i = text.IndexOf(value, i + value.Length, StringComparison.Ordinal))
            count++;
        return count;
    }

    internal static string FillTemplate(string template, string input, IReadOnlyList<QueryRanker.Scored> examples, IReadOnlyList<QueryRanker.Scored> passages)
    {
        var exampleText = examples.Count == 0 ? "" : "Examples:\n" + string.Join("\n\n", examples.Select(e => $"Input: {e.Payload.Text}\nOutput: {e.Payload.Label}"));
        var contextText = passages.Count == 0 ? "" : "Context:\n" + string.Join("\n\n", passages.Select((p, i) => $"[{i + 1}] {p.Payload.Text}"));
        var filled = template.Replace("{{examples}}", exampleText).Replace("{{context}}", contextText).Replace("{{input}}", input);
        return BlankLines().Replace(filled, "\n\n").TrimStart();
    }

    [GeneratedRegex(@"\n{3,}")]
    private static partial Regex BlankLines();

    public async Task<ClassifyResponse> ClassifyAsync(string collection, ClassifyRequest request, CancellationToken ct)
    {
        var record = await collections.RequireAsync(collection, ct);
        var hits = await ranker.RankAsync(record, request.Text, request.K, request.Filter, request.Mode, false, 0.5, ct);
        var voters = hits.Where(h => h.Payload.Label is not null).ToList();
        if (voters.Count == 0)
            throw new NoLabelledExamplesException(collection);
        var votes = new Dictionary<string, double>(StringComparer.Ordinal);
        var firstRank = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < voters.Count; i++)
        {
            var label = voters[i].Payload.Label!;
            // Similarity weights are floored just above zero so a far but agreeing neighbour still counts a little.
            votes[label] = votes.GetValueOrDefault(label) + (request.WeightBySimilarity ? Math.Max(voters[i].Score, 0) + 1e-6 : 1);
            firstRank.TryAdd(label, i);
        }
        var winner = votes.OrderByDescending(v => v.Value).ThenBy(v => firstRank[v.Key]).First();
        return new ClassifyResponse { Collection = collection, Label = winner.Key, Confidence = winner.Value / votes.Values.Sum(), Votes = votes, Neighbors = voters.Select(QueryRanker.ToNeighbor).ToList() };
    }

    public async Task<EvaluateResponse> EvaluateAsync(string collection, EvaluateRequest request, CancellationToken ct)
    {
        var record = await collections.RequireAsync(collection, ct);
        if (request.Queries.Count == 0)
            throw new RetrievalValidationException("queries", "No queries were given.");
        double hitSum = 0, rrSum = 0, ndcgSum = 0;
        KeywordSnapshot? labels = null;
        for (var q = 0; q < request.Queries.Count; q++)
        {
            var query = request.Queries[q];
            if (query is null)
                throw new RetrievalValidationException($"queries[{q}]", $"Query {q} is null.");
            if (query.RelevantIds is not { Count: > 0 } && string.IsNullOrEmpty(query.RelevantLabel))
                throw new RetrievalValidationException($"queries[{q}]", $"Query {q} names neither relevantIds nor relevantLabel.");
            var hits = await ranker.RankAsync(record, query.Text, request.K, null, request.Mode, false, 0.5, ct);
            bool Relevant(QueryRanker.Scored h) =>
                (query.RelevantIds is { } ids && (ids.Contains(h.Id) || ids.Contains(h.Payload.DocumentId))) ||
                (query.RelevantLabel is { } label && h.Payload.Label == label);
            int totalRelevant;
            if (query.RelevantLabel is { } wanted)
            {
                labels ??= await keywords.GetAsync(db, record, ct);
                totalRelevant = labels.Payloads.Count(p => p.Label == wanted);
            }
            else
                totalRelevant = query.RelevantIds!.Count;
            double dcg = 0;
            var first = -1;
            for (var i = 0; i < hits.Count; i++)
            {
                if (!Relevant(hits[i]))
                    continue;
                dcg += 1 / Math.Log2(i + 2);
                if (first < 0)
                    first = i;
            }
            var idcg = Enumerable.Range(0, Math.Min(request.K, Math.Max(totalRelevant, 1))).Sum(i => 1 / Math.Log2(i + 2));
            hitSum += first >= 0 ? 1 : 0;
            rrSum += first >= 0 ? 1.0 / (first + 1) : 0;
            ndcgSum += dcg / idcg;
        }
        var n = request.Queries.Count;
        return new EvaluateResponse(collection, n, request.K, request.Mode, hitSum / n, rrSum / n, ndcgSum / n);
    }
}

public sealed class NoLabelledExamplesException(string collection)
    : RetrievalException($"No labelled examples are near this text in collection '{collection}': the kNN classifier needs points with a label (index a dataset or POST examples).")
{
    public override int StatusCode => StatusCodes.Status422UnprocessableEntity;
    public override string Title => "Nothing to vote with.";
}
