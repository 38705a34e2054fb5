using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AspireTune.FineTuning.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class JobMethod : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "Method",
                table: "jobs",
                type: "TEXT",
                nullable: false,
                defaultValue: "supervised"); // jobs created before dpo existed were all supervised
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "Method",
                table: "jobs");
        }
    }
}
