using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AspireTune.Comparison.Data.Migrations.PostgreSql
{
    /// <inheritdoc />
    public partial class FineTunedTrainingCurves : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "TrainingJson",
                table: "experiments",
                type: "text",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "TrainingJson",
                table: "experiments");
        }
    }
}
