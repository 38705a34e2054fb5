using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AspireTune.Comparison.Data.Migrations.PostgreSql
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
                type: "double precision",
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
