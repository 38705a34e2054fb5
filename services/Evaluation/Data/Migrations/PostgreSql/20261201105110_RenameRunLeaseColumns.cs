using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace AspireTune.Evaluation.Data.Migrations.PostgreSql
{
    /// <inheritdoc />
    public partial class RenameRunLeaseColumns : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.RenameColumn(
                name: "Owner",
                table: "runs",
                newName: "LeaseOwner");

            migrationBuilder.RenameColumn(
                name: "LeaseUntil",
                table: "runs",
                newName: "LeaseExpiresAt");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.RenameColumn(
                name: "LeaseOwner",
                table: "runs",
                newName: "Owner");

            migrationBuilder.RenameColumn(
                name: "LeaseExpiresAt",
                table: "runs",
                newName: "LeaseUntil");
        }
    }
}
