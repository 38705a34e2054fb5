using AspireTune.Evaluation.Runs;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace AspireTune.Evaluation.Data;

/// <summary>The Evaluation service's own database (connection name <c>evaluationdb</c>).</summary>
public sealed class EvaluationDbContext(DbContextOptions<EvaluationDbContext> options) : DbContext(options)
{
    public const string ConnectionName = "evaluationdb";

    public DbSet<ModelEndpointEntity> ModelEndpoints => Set<ModelEndpointEntity>();
    public DbSet<PromptVersionEntity> PromptVersions => Set<PromptVersionEntity>();
    public DbSet<PromptLabelEntity> PromptLabels => Set<PromptLabelEntity>();
    public DbSet<DatasetEntity> Datasets => Set<DatasetEntity>();
    public DbSet<RunEntity> Runs => Set<RunEntity>();
    public DbSet<ItemResultEntity> ItemResults => Set<ItemResultEntity>();
    public DbSet<CachedResponseEntity> CachedResponses => Set<CachedResponseEntity>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.AddInbox().AddOutbox();
        modelBuilder.Entity<ModelEndpointEntity>(e =>
        {
            e.ToTable("model_endpoints");
            e.HasKey(x => x.Id);
            e.Property(x => x.Kind).HasConversion<string>();
        });
        modelBuilder.Entity<PromptVersionEntity>(e =>
        {
            e.ToTable("prompt_versions");
            e.HasKey(x => new { x.Name, x.Version });
        });
        modelBuilder.Entity<PromptLabelEntity>(e =>
        {
            e.ToTable("prompt_labels");
            e.HasKey(x => new { x.Name, x.Label });
        });
        modelBuilder.Entity<DatasetEntity>(e =>
        {
            e.ToTable("datasets");
            e.HasKey(x => x.Sha256);
        });
        modelBuilder.Entity<RunEntity>(e =>
        {
            e.ToTable("runs");
            e.HasKey(x => x.Id);
            e.Property(x => x.Status).HasConversion<string>();
            e.HasIndex(x => x.Status);
            e.Property(x => x.Spec).HasColumnName("SpecJson").HasConversion(v => v.Write(), s => RunSpec.Read(s));
            e.Property(x => x.Summaries).HasJsonConversion("SummaryJson");
            e.Property(x => x.ResultsArtifact).HasJsonConversion("ResultsArtifactJson");
        });
        modelBuilder.Entity<ItemResultEntity>(e =>
        {
            e.ToTable("item_results");
            e.HasKey(x => x.Id);
            // One row per call: a resumed run skips what is here, and a replayed write cannot duplicate it.
            e.HasIndex(x => new { x.RunId, x.Pair, x.Item, x.Repeat }).IsUnique();
            e.Property(x => x.Scores).HasJsonConversion("ScoresJson");
        });
        modelBuilder.Entity<CachedResponseEntity>(e =>
        {
            e.ToTable("response_cache");
            e.HasKey(x => x.Key);
        });
    }
}
