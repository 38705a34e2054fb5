using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AspireTune.Comparison.Data.Migrations.Sqlite
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
                type: "TEXT",
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
