using AspireTune.ServiceDefaults.Data;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.FineTuning.Data;

/// <summary>The FineTuning service's own database (connection name <c>finetuningdb</c>).</summary>
public sealed class FineTuningDbContext(DbContextOptions<FineTuningDbContext> options) : DbContext(options)
{
    public const string ConnectionName = "finetuningdb";

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.AddInbox();
    }
}
