using AspireTune.ServiceDefaults.Data;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Evaluation.Data;

/// <summary>The Evaluation service's own database (connection name <c>evaluationdb</c>).</summary>
public sealed class EvaluationDbContext(DbContextOptions<EvaluationDbContext> options) : DbContext(options)
{
    public const string ConnectionName = "evaluationdb";

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.AddInbox();
    }
}
