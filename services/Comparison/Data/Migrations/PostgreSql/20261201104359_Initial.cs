using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace AspireTune.Comparison.Data.Migrations.PostgreSql
{
    /// <inheritdoc />
    public partial class Initial : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "experiments",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "uuid", nullable: false),
                    Name = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    Status = table.Column<string>(type: "character varying(20)", maxLength: 20, nullable: false),
                    Step = table.Column<string>(type: "character varying(40)", maxLength: 40, nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    UpdatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    CompletedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    RequestJson = table.Column<string>(type: "text", nullable: false),
                    DatasetSha256 = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    CurationJson = table.Column<string>(type: "text", nullable: true),
                    TrainArtifactJson = table.Column<string>(type: "text", nullable: true),
                    ValidationArtifactJson = table.Column<string>(type: "text", nullable: true),
                    TestArtifactJson = table.Column<string>(type: "text", nullable: true),
                    Collection = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: true),
                    FineTuningJobId = table.Column<Guid>(type: "uuid", nullable: true),
                    FineTunedModel = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: true),
                    Winner = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: true),
                    Decision = table.Column<string>(type: "text", nullable: true),
                    ComparisonJson = table.Column<string>(type: "text", nullable: true),
                    ReportHtmlArtifactJson = table.Column<string>(type: "text", nullable: true),
                    ReportJsonArtifactJson = table.Column<string>(type: "text", nullable: true),
                    Error = table.Column<string>(type: "text", nullable: true),
                    Version = table.Column<int>(type: "integer", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_experiments", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "processed_messages",
                columns: table => new
                {
                    MessageId = table.Column<Guid>(type: "uuid", nullable: false),
                    Consumer = table.Column<string>(type: "text", nullable: false),
                    ProcessedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_processed_messages", x => new { x.MessageId, x.Consumer });
                });

            migrationBuilder.CreateTable(
                name: "candidates",
                columns: table => new
                {
                    ExperimentId = table.Column<Guid>(type: "uuid", nullable: false),
                    Name = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    Kind = table.Column<string>(type: "character varying(40)", maxLength: 40, nullable: false),
                    Status = table.Column<string>(type: "character varying(20)", maxLength: 20, nullable: false),
                    ModelEndpoint = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: true),
                    Prompts = table.Column<string>(type: "character varying(2000)", maxLength: 2000, nullable: true),
                    TuningRunId = table.Column<Guid>(type: "uuid", nullable: true),
                    TestRunId = table.Column<Guid>(type: "uuid", nullable: true),
                    OutcomesJson = table.Column<string>(type: "text", nullable: true),
                    Error = table.Column<string>(type: "text", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_candidates", x => new { x.ExperimentId, x.Name });
                    table.ForeignKey(
                        name: "FK_candidates_experiments_ExperimentId",
                        column: x => x.ExperimentId,
                        principalTable: "experiments",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "experiment_log",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    ExperimentId = table.Column<Guid>(type: "uuid", nullable: false),
                    At = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    Step = table.Column<string>(type: "character varying(40)", maxLength: 40, nullable: false),
                    Message = table.Column<string>(type: "character varying(4000)", maxLength: 4000, nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_experiment_log", x => x.Id);
                    table.ForeignKey(
                        name: "FK_experiment_log_experiments_ExperimentId",
                        column: x => x.ExperimentId,
                        principalTable: "experiments",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_candidates_TestRunId",
                table: "candidates",
                column: "TestRunId");

            migrationBuilder.CreateIndex(
                name: "IX_candidates_TuningRunId",
                table: "candidates",
                column: "TuningRunId");

            migrationBuilder.CreateIndex(
                name: "IX_experiment_log_ExperimentId_Id",
                table: "experiment_log",
                columns: new[] { "ExperimentId", "Id" });

            migrationBuilder.CreateIndex(
                name: "IX_experiments_CreatedAt",
                table: "experiments",
                column: "CreatedAt");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "candidates");

            migrationBuilder.DropTable(
                name: "experiment_log");

            migrationBuilder.DropTable(
                name: "processed_messages");

            migrationBuilder.DropTable(
                name: "experiments");
        }
    }
}
