using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AspireTune.Evaluation.Data.Migrations.PostgreSql
{
    /// <inheritdoc />
    public partial class TraceContextAndMetadata : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "TraceParent",
                table: "runs",
                type: "text",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "TraceParent",
                table: "runs");
        }
    }
}
