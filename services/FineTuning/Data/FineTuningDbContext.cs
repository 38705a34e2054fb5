using System.Text.Json;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.FineTuning.Data;

/// <summary>The FineTuning service's own database (connection name <c>finetuningdb</c>).</summary>
public sealed class FineTuningDbContext(DbContextOptions<FineTuningDbContext> options) : DbContext(options)
{
    public const string ConnectionName = "finetuningdb";

    public DbSet<DataFile> Files => Set<DataFile>();
    public DbSet<FineTuningJob> Jobs => Set<FineTuningJob>();
    public DbSet<JobEvent> JobEvents => Set<JobEvent>();
    public DbSet<JobCheckpoint> Checkpoints => Set<JobCheckpoint>();
    public DbSet<JobMetric> Metrics => Set<JobMetric>();
    public DbSet<RegisteredModel> Models => Set<RegisteredModel>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.AddInbox().AddOutbox();
        modelBuilder.Entity<DataFile>(e =>
        {
            e.ToTable("files");
            e.HasKey(f => f.Id);
        });
        modelBuilder.Entity<FineTuningJob>(e =>
        {
            e.ToTable("jobs");
            e.HasKey(j => j.Id);
            e.HasIndex(j => new { j.Status, j.CreatedAt });
            e.HasIndex(j => j.CreatedAt);
            // Tracked updates (gate, completion) fail rather than overwrite a cancel or another worker's claim.
            e.Property(j => j.Status).IsConcurrencyToken();
            e.Property(j => j.LeaseOwner).IsConcurrencyToken();
            // JSON columns keep the names and the System.Text.Json default spelling they had as hand-serialized text.
            e.Property(j => j.Metadata).HasJsonConversion("MetadataJson", JsonSerializerOptions.Default);
            e.Property(j => j.RequestedHyperparameters).HasJsonConversion("HyperparametersJson", JsonSerializerOptions.Default);
            e.Property(j => j.ResolvedHyperparameters).HasJsonConversion("ResolvedHyperparametersJson", JsonSerializerOptions.Default);
            e.Property(j => j.QualityReport).HasJsonConversion("QualityReportJson", JsonSerializerOptions.Default);
            e.Property(j => j.BestMetrics).HasJsonConversion("BestMetricsJson", JsonSerializerOptions.Default);
        });
        modelBuilder.Entity<JobEvent>(e =>
        {
            e.ToTable("job_events");
            e.HasKey(j => j.Id);
            e.HasIndex(j => new { j.JobId, j.Id });
            e.Property(j => j.Data).HasJsonConversion("DataJson", JsonSerializerOptions.Default);
        });
        modelBuilder.Entity<JobCheckpoint>(e =>
        {
            e.ToTable("job_checkpoints");
            e.HasKey(c => c.Id);
            e.HasIndex(c => new { c.JobId, c.Step }).IsUnique();
        });
        modelBuilder.Entity<JobMetric>(e =>
        {
            e.ToTable("job_metrics");
            e.HasKey(m => m.Id);
            e.HasIndex(m => new { m.JobId, m.Step });
        });
        modelBuilder.Entity<RegisteredModel>(e =>
        {
            e.ToTable("models");
            e.HasKey(m => m.Id);
            e.Property(m => m.Hyperparameters).HasJsonConversion("HyperparametersJson", JsonSerializerOptions.Default);
            e.Property(m => m.BestMetrics).HasJsonConversion("BestMetricsJson", JsonSerializerOptions.Default);
        });

        // DateTimeOffset columns in SQLite: UTC ticks, set for every service by ServiceDatabase's model customizer.
    }
}
