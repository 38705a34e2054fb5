using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AspireTune.FineTuning.Data.Migrations.PostgreSql
{
    /// <inheritdoc />
    public partial class TraceContextAndMetadata : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "MetadataJson",
                table: "jobs",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "TraceParent",
                table: "jobs",
                type: "text",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "MetadataJson",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "TraceParent",
                table: "jobs");
        }
    }
}
