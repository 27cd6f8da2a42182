using System.Collections.Generic;
using Microsoft.EntityFrameworkCore;

namespace RwSplit.EfCore;

public enum OrderStatus
{
    Placed,
    Shipped,
}

public sealed class Order
{
    public int Id { get; set; }

    public string Customer { get; set; } = "";

    public OrderStatus Status { get; set; }

    public List<OrderLine> Lines { get; } = [];
}

public sealed class OrderLine
{
    public int Id { get; set; }

    public int OrderId { get; set; }

    public string Sku { get; set; } = "";

    public int Quantity { get; set; }
}

public sealed class StockItem
{
    public string Sku { get; set; } = "";

    public int OnHand { get; set; }
}

/// <summary>The shop database: orders and their lines (a PostgreSQL enum for the status).</summary>
public sealed class ShopContext(DbContextOptions<ShopContext> options) : DbContext(options)
{
    public DbSet<Order> Orders => Set<Order>();
}

/// <summary>The warehouse database, on another server: stock that may never go below zero.</summary>
public sealed class WarehouseContext(DbContextOptions<WarehouseContext> options) : DbContext(options)
{
    public DbSet<StockItem> Stock => Set<StockItem>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
        => modelBuilder.Entity<StockItem>(b =>
        {
            b.HasKey(s => s.Sku);
            b.ToTable(t => t.HasCheckConstraint("stock_not_negative", "\"OnHand\" >= 0"));
        });
}
