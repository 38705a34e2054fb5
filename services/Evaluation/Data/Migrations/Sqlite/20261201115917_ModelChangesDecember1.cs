using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AspireTune.Evaluation.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class ModelChangesDecember1 : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "ContextLength",
                table: "model_endpoints",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "ExamplesRetrieved",
                table: "item_results",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "ExamplesShown",
                table: "item_results",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<bool>(
                name: "InputTruncated",
                table: "item_results",
                type: "INTEGER",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "ContextLength",
                table: "model_endpoints");

            migrationBuilder.DropColumn(
                name: "ExamplesRetrieved",
                table: "item_results");

            migrationBuilder.DropColumn(
                name: "ExamplesShown",
                table: "item_results");

            migrationBuilder.DropColumn(
                name: "InputTruncated",
                table: "item_results");
        }
    }
}
