using AspireTune.ServiceDefaults.Data;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Retrieval.Data;

/// <summary>The Retrieval service's own database (connection name <c>retrievaldb</c>).</summary>
public sealed class RetrievalDbContext(DbContextOptions<RetrievalDbContext> options) : DbContext(options)
{
    public const string ConnectionName = "retrievaldb";

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.AddInbox();
    }
}
