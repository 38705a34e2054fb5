using System.Net;
using AspireTune.Comparison.Data;
using Microsoft.Extensions.Options;

namespace AspireTune.Comparison.Workflow;

/// <summary>
/// Cancelling an experiment cancels what it started: its evaluation runs still queued or running (Evaluation's
/// <c>POST /api/evaluation/runs/{id}/cancel</c>) and its fine-tuning job (FineTuning's
/// <c>POST /api/fine-tuning/jobs/{id}/cancel</c>). A 404 or 409 means that piece never started or already ended.
/// </summary>
public sealed class WorkCanceller(HttpClient http, IOptions<ComparisonOptions> options, ILogger<WorkCanceller> logger)
{
    /// <summary>What was asked to stop, and what could not be asked (with why), for the experiment's log.</summary>
    public async Task<(int Runs, bool Job, IReadOnlyList<string> Problems)> CancelStartedWorkAsync(Experiment experiment, CancellationToken ct)
    {
        var o = options.Value;
        var problems = new List<string>();
        var runs = 0;
        foreach (var run in experiment.Candidates
            .SelectMany(c => new[] { c.Status == CandidateStatus.Tuning ? c.TuningRunId : null, c.Status is CandidateStatus.Tuning or CandidateStatus.Evaluating ? c.TestRunId : null })
            .OfType<Guid>().Distinct())
            if (await PostAsync($"{o.EvaluationBaseUrl.TrimEnd('/')}/api/evaluation/runs/{run}/cancel", $"evaluation run {run}", problems, ct))
                runs++;
        var job = experiment.FineTuningJobId is { } id && experiment.Candidates.Any(c => c.Kind == Contracts.Comparison.CandidateKind.FineTuned && c.Status == CandidateStatus.Tuning)
            && await PostAsync($"{o.FineTuningBaseUrl.TrimEnd('/')}/api/fine-tuning/jobs/{id}/cancel", $"fine-tuning job {id}", problems, ct);
        return (runs, job, problems);
    }

    private async Task<bool> PostAsync(string url, string what, List<string> problems, CancellationToken ct)
    {
        try
        {
            using var response = await http.PostAsync(url, null, ct);
            if (response.IsSuccessStatusCode)
                return true;
            if (response.StatusCode is not (HttpStatusCode.NotFound or HttpStatusCode.Conflict))
                problems.Add($"{what}: HTTP {(int)response.StatusCode}");
        }
        catch (HttpRequestException e)
        {
            problems.Add($"{what}: {e.Message}");
            logger.LogWarning(e, "Could not cancel {What}", what);
        }
        return false;
    }
}
