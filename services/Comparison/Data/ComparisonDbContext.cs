using AspireTune.ServiceDefaults.Data;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Comparison.Data;

/// <summary>The Comparison service's own database (connection name <c>comparisondb</c>).</summary>
public sealed class ComparisonDbContext(DbContextOptions<ComparisonDbContext> options) : DbContext(options)
{
    public const string ConnectionName = "comparisondb";

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.AddInbox();
    }
}
