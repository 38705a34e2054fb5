using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AspireTune.Comparison.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class ModelChangesDecember1 : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<double>(
                name: "TrainingHours",
                table: "experiments",
                type: "REAL",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "TrainingHours",
                table: "experiments");
        }
    }
}
