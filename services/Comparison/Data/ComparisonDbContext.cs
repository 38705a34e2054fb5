using System.Text.Json;
using AspireTune.Contracts.Common;
using AspireTune.Contracts.Comparison;
using AspireTune.ServiceDefaults.Data;
using AspireTune.ServiceDefaults.Messaging;
using Microsoft.EntityFrameworkCore;

namespace AspireTune.Comparison.Data;

/// <summary>The Comparison service's own database (connection name <c>comparisondb</c>).</summary>
public sealed class ComparisonDbContext(DbContextOptions<ComparisonDbContext> options) : DbContext(options)
{
    public const string ConnectionName = "comparisondb";

    /// <summary>How the JSON columns are written: web names, undefined statistics (NaN) as null.</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new FiniteOrNullConverter() } };

    public DbSet<Experiment> Experiments => Set<Experiment>();
    public DbSet<Candidate> Candidates => Set<Candidate>();
    public DbSet<ExperimentLogEntry> Log => Set<ExperimentLogEntry>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.AddInbox().AddOutbox();
        modelBuilder.Entity<Experiment>(e =>
        {
            e.ToTable("experiments");
            e.HasIndex(x => x.CreatedAt);
            e.Property(x => x.Status).HasConversion<string>().HasMaxLength(20);
            e.HasMany(x => x.Candidates).WithOne().HasForeignKey(c => c.ExperimentId);
            e.HasMany(x => x.Log).WithOne().HasForeignKey(l => l.ExperimentId);
            e.Property(x => x.Request).HasJsonConversion("RequestJson", Json);
            e.Property(x => x.Curation).HasJsonConversion("CurationJson", Json);
            e.Property(x => x.TrainArtifact).HasJsonConversion("TrainArtifactJson", Json);
            e.Property(x => x.ValidationArtifact).HasJsonConversion("ValidationArtifactJson", Json);
            e.Property(x => x.TestArtifact).HasJsonConversion("TestArtifactJson", Json);
            e.Property(x => x.Result).HasJsonConversion("ComparisonJson", Json);
            e.Property(x => x.Training).HasJsonConversion("TrainingJson", Json);
            e.Property(x => x.ReportHtmlArtifact).HasJsonConversion("ReportHtmlArtifactJson", Json);
            e.Property(x => x.ReportJsonArtifact).HasJsonConversion("ReportJsonArtifactJson", Json);
        });
        modelBuilder.Entity<Candidate>(e =>
        {
            e.ToTable("candidates");
            e.HasKey(c => new { c.ExperimentId, c.Name });
            e.Property(x => x.Status).HasConversion<string>().HasMaxLength(20);
            e.Property(x => x.Kind).HasConversion(k => k.ToWireName(), s => CandidateKinds.Parse(s));
            e.HasIndex(c => c.TuningRunId);
            e.HasIndex(c => c.TestRunId);
            e.Property(c => c.Outcomes).HasJsonConversion("OutcomesJson", Json);
        });
        modelBuilder.Entity<ExperimentLogEntry>(e =>
        {
            e.ToTable("experiment_log");
            e.HasIndex(l => new { l.ExperimentId, l.Id });
        });
    }
}
