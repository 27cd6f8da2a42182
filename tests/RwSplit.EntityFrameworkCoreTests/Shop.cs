using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace RwSplit.EntityFrameworkCoreTests;

public enum Mood
{
    Happy,
    Sad,
    Curious,
}

public sealed class Customer
{
    public int Id { get; set; }

    public string Name { get; set; } = "";

    public Mood Mood { get; set; }

    public List<Order> Orders { get; } = [];
}

public sealed class Order
{
    public int Id { get; set; }

    public int CustomerId { get; set; }

    public Customer? Customer { get; set; }

    public string Reference { get; set; } = "";

    public List<OrderLine> Lines { get; } = [];
}

public sealed class OrderLine
{
    public long Id { get; set; }

    public int OrderId { get; set; }

    public string Product { get; set; } = "";

    public int Quantity { get; set; }
}

/// <summary>The shop: customers (with a PostgreSQL enum), orders, order lines (keys from a HiLo sequence).</summary>
public class ShopContext(DbContextOptions<ShopContext> options) : DbContext(options)
{
    public DbSet<Customer> Customers => Set<Customer>();

    public DbSet<Order> Orders => Set<Order>();

    public DbSet<OrderLine> Lines => Set<OrderLine>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        // The enum type itself comes from UseNpgsql(o => o.MapEnum<Mood>("mood")), which also adds it to the model.
        modelBuilder.Entity<Customer>().ToTable("customers");
        modelBuilder.Entity<Order>().ToTable("orders");
        modelBuilder.Entity<OrderLine>(b =>
        {
            b.ToTable("order_lines");
            NpgsqlPropertyBuilderExtensions.UseHiLo(b.Property(l => l.Id), "order_line_ids");
        });
        foreach (var property in modelBuilder.Model.GetEntityTypes().SelectMany(e => e.GetProperties()))
            property.SetColumnName(property.Name.ToLowerInvariant()); // customers.name, as the tests' own SQL writes it
    }
}

/// <summary>A context with one migration (hand-written, as <c>dotnet ef migrations add</c> would write it).</summary>
public sealed class MigratedContext(DbContextOptions<MigratedContext> options) : DbContext(options)
{
    public DbSet<Note> Notes => Set<Note>();
}

public sealed class Note
{
    public int Id { get; set; }

    public string Text { get; set; } = "";
}

[DbContext(typeof(MigratedContext))]
[Migration("20261203000000_Notes")]
public sealed class NotesMigration : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "Notes",
            columns: table => new
            {
                Id = table.Column<int>(nullable: false).Annotation("Npgsql:ValueGenerationStrategy", Npgsql.EntityFrameworkCore.PostgreSQL.Metadata.NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                Text = table.Column<string>(nullable: false),
            },
            constraints: table => table.PrimaryKey("PK_Notes", x => x.Id));
        migrationBuilder.Sql("INSERT INTO \"Notes\" (\"Text\") VALUES ('seeded by the migration')");
    }

    protected override void Down(MigrationBuilder migrationBuilder) => migrationBuilder.DropTable("Notes");
}
