using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AspireTune.FineTuning.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class Initial : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "files",
                columns: table => new
                {
                    Id = table.Column<string>(type: "TEXT", nullable: false),
                    FileName = table.Column<string>(type: "TEXT", nullable: false),
                    ArtifactId = table.Column<string>(type: "TEXT", nullable: false),
                    Sha256 = table.Column<string>(type: "TEXT", nullable: false),
                    Bytes = table.Column<long>(type: "INTEGER", nullable: false),
                    Format = table.Column<string>(type: "TEXT", nullable: false),
                    Examples = table.Column<int>(type: "INTEGER", nullable: false),
                    CreatedAt = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_files", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "job_checkpoints",
                columns: table => new
                {
                    Id = table.Column<string>(type: "TEXT", nullable: false),
                    JobId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Step = table.Column<int>(type: "INTEGER", nullable: false),
                    TrainLoss = table.Column<double>(type: "REAL", nullable: false),
                    ValidLoss = table.Column<double>(type: "REAL", nullable: true),
                    ValidMeanTokenAccuracy = table.Column<double>(type: "REAL", nullable: true),
                    Path = table.Column<string>(type: "TEXT", nullable: false),
                    CreatedAt = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_job_checkpoints", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "job_events",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    JobId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Level = table.Column<string>(type: "TEXT", nullable: false),
                    Type = table.Column<string>(type: "TEXT", nullable: false),
                    Message = table.Column<string>(type: "TEXT", nullable: false),
                    DataJson = table.Column<string>(type: "TEXT", nullable: true),
                    CreatedAt = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_job_events", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "job_metrics",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    JobId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Step = table.Column<int>(type: "INTEGER", nullable: false),
                    Epoch = table.Column<double>(type: "REAL", nullable: false),
                    TrainLoss = table.Column<double>(type: "REAL", nullable: false),
                    ValidLoss = table.Column<double>(type: "REAL", nullable: true),
                    ValidMeanTokenAccuracy = table.Column<double>(type: "REAL", nullable: true),
                    LearningRate = table.Column<double>(type: "REAL", nullable: false),
                    TokensPerSecond = table.Column<double>(type: "REAL", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_job_metrics", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "jobs",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    ExperimentId = table.Column<Guid>(type: "TEXT", nullable: true),
                    BaseModel = table.Column<string>(type: "TEXT", nullable: false),
                    Status = table.Column<string>(type: "TEXT", nullable: false),
                    TrainingArtifactId = table.Column<string>(type: "TEXT", nullable: false),
                    TrainingSha256 = table.Column<string>(type: "TEXT", nullable: false),
                    TrainingBytes = table.Column<long>(type: "INTEGER", nullable: false),
                    TrainingFileId = table.Column<string>(type: "TEXT", nullable: true),
                    ValidationArtifactId = table.Column<string>(type: "TEXT", nullable: true),
                    ValidationSha256 = table.Column<string>(type: "TEXT", nullable: true),
                    ValidationBytes = table.Column<long>(type: "INTEGER", nullable: false),
                    ValidationFileId = table.Column<string>(type: "TEXT", nullable: true),
                    TestArtifactId = table.Column<string>(type: "TEXT", nullable: true),
                    TestSha256 = table.Column<string>(type: "TEXT", nullable: true),
                    TestBytes = table.Column<long>(type: "INTEGER", nullable: false),
                    TestFileId = table.Column<string>(type: "TEXT", nullable: true),
                    Suffix = table.Column<string>(type: "TEXT", nullable: true),
                    HyperparametersJson = table.Column<string>(type: "TEXT", nullable: false),
                    ResolvedHyperparametersJson = table.Column<string>(type: "TEXT", nullable: true),
                    QualityReportJson = table.Column<string>(type: "TEXT", nullable: true),
                    CuratedArtifactId = table.Column<string>(type: "TEXT", nullable: true),
                    CuratedSha256 = table.Column<string>(type: "TEXT", nullable: true),
                    CuratedBytes = table.Column<long>(type: "INTEGER", nullable: false),
                    FineTunedModel = table.Column<string>(type: "TEXT", nullable: true),
                    ErrorCode = table.Column<string>(type: "TEXT", nullable: true),
                    ErrorMessage = table.Column<string>(type: "TEXT", nullable: true),
                    Step = table.Column<int>(type: "INTEGER", nullable: false),
                    TotalSteps = table.Column<int>(type: "INTEGER", nullable: false),
                    TrainedTokens = table.Column<long>(type: "INTEGER", nullable: false),
                    BestMetricsJson = table.Column<string>(type: "TEXT", nullable: true),
                    FitVerdict = table.Column<string>(type: "TEXT", nullable: true),
                    FitAdvice = table.Column<string>(type: "TEXT", nullable: true),
                    CancelRequested = table.Column<bool>(type: "INTEGER", nullable: false),
                    LeaseOwner = table.Column<string>(type: "TEXT", nullable: true),
                    LeaseExpiresAt = table.Column<long>(type: "INTEGER", nullable: true),
                    Attempts = table.Column<int>(type: "INTEGER", nullable: false),
                    TrainingSeconds = table.Column<double>(type: "REAL", nullable: false),
                    CreatedAt = table.Column<long>(type: "INTEGER", nullable: false),
                    StartedAt = table.Column<long>(type: "INTEGER", nullable: true),
                    FinishedAt = table.Column<long>(type: "INTEGER", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_jobs", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "models",
                columns: table => new
                {
                    Id = table.Column<string>(type: "TEXT", nullable: false),
                    Source = table.Column<string>(type: "TEXT", nullable: false),
                    Path = table.Column<string>(type: "TEXT", nullable: false),
                    Architecture = table.Column<string>(type: "TEXT", nullable: true),
                    Parameters = table.Column<long>(type: "INTEGER", nullable: false),
                    HasTokenizer = table.Column<bool>(type: "INTEGER", nullable: false),
                    BaseModel = table.Column<string>(type: "TEXT", nullable: true),
                    JobId = table.Column<Guid>(type: "TEXT", nullable: true),
                    DatasetSha256 = table.Column<string>(type: "TEXT", nullable: true),
                    HyperparametersJson = table.Column<string>(type: "TEXT", nullable: true),
                    BestMetricsJson = table.Column<string>(type: "TEXT", nullable: true),
                    CreatedAt = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_models", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "processed_messages",
                columns: table => new
                {
                    MessageId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Consumer = table.Column<string>(type: "TEXT", nullable: false),
                    ProcessedAt = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_processed_messages", x => new { x.MessageId, x.Consumer });
                });

            migrationBuilder.CreateIndex(
                name: "IX_job_checkpoints_JobId_Step",
                table: "job_checkpoints",
                columns: new[] { "JobId", "Step" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_job_events_JobId_Id",
                table: "job_events",
                columns: new[] { "JobId", "Id" });

            migrationBuilder.CreateIndex(
                name: "IX_job_metrics_JobId_Step",
                table: "job_metrics",
                columns: new[] { "JobId", "Step" });

            migrationBuilder.CreateIndex(
                name: "IX_jobs_CreatedAt",
                table: "jobs",
                column: "CreatedAt");

            migrationBuilder.CreateIndex(
                name: "IX_jobs_Status_CreatedAt",
                table: "jobs",
                columns: new[] { "Status", "CreatedAt" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "files");

            migrationBuilder.DropTable(
                name: "job_checkpoints");

            migrationBuilder.DropTable(
                name: "job_events");

            migrationBuilder.DropTable(
                name: "job_metrics");

            migrationBuilder.DropTable(
                name: "jobs");

            migrationBuilder.DropTable(
                name: "models");

            migrationBuilder.DropTable(
                name: "processed_messages");
        }
    }
}
