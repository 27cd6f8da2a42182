namespace RwSplit.Benchmarks;

/// <summary>The SQL texts the benchmarks classify and route: a point query and a long reporting query per dialect.</summary>
internal static class Statements
{
    public const string PgShortRead = "SELECT id, name, price FROM products WHERE id = $1";

    public const string PgShortWrite = "UPDATE products SET stock = stock - 1 WHERE id = $1";

    /// <summary>About 1.5 KB: CTEs, joins, a window function, a subquery, comments and string literals.</summary>
    public const string PgLongRead = """
        /* monthly revenue report, one row per customer segment */
        WITH recent_orders AS (
            SELECT o.id, o.customer_id, o.created_at, o.status, o.total_amount
            FROM orders o
            WHERE o.created_at >= date_trunc('month', now()) - interval '3 months'
              AND o.status IN ('paid', 'shipped', 'delivered')
        ),
        line_totals AS (
            SELECT l.order_id, sum(l.quantity * l.unit_price) AS lines_amount, count(*) AS line_count
            FROM order_lines l
            JOIN recent_orders r ON r.id = l.order_id
            GROUP BY l.order_id
        ),
        segments AS (
            SELECT c.id AS customer_id,
                   CASE WHEN c.lifetime_value > 10000 THEN 'gold'
                        WHEN c.lifetime_value > 1000 THEN 'silver'
                        ELSE 'bronze' END AS segment,
                   c.country
            FROM customers c
            WHERE c.deleted_at IS NULL
        )
        SELECT s.segment,
               s.country,
               date_trunc('month', r.created_at) AS month,
               count(DISTINCT r.customer_id) AS customers,
               count(r.id) AS orders,
               sum(t.lines_amount) AS revenue,
               avg(t.line_count)::numeric(10, 2) AS avg_lines,
               rank() OVER (PARTITION BY date_trunc('month', r.created_at) ORDER BY sum(t.lines_amount) DESC) AS revenue_rank,
               (SELECT count(*) FROM refunds f WHERE f.order_id = ANY (array_agg(r.id))) AS refunds -- correlated
        FROM recent_orders r
        JOIN line_totals t ON t.order_id = r.id
        JOIN segments s ON s.customer_id = r.customer_id
        LEFT JOIN promotions p ON p.code = 'SPRING-' || to_char(r.created_at, 'YYYY') AND p.active
        WHERE s.country <> 'XX' AND coalesce(p.discount, 0) < 0.5
        GROUP BY s.segment, s.country, date_trunc('month', r.created_at)
        HAVING sum(t.lines_amount) > 100
        ORDER BY month DESC, revenue DESC
        LIMIT 500
        """;

    public const string TSqlShortRead = "SELECT Id, Name, Price FROM dbo.Products WHERE Id = @id";

    /// <summary>About 1.5 KB of T-SQL: CTEs, joins, a window function, a subquery, comments and string literals.</summary>
    public const string TSqlLongRead = """
        /* monthly revenue report, one row per customer segment */
        WITH RecentOrders AS (
            SELECT o.Id, o.CustomerId, o.CreatedAt, o.Status, o.TotalAmount
            FROM dbo.Orders AS o
            WHERE o.CreatedAt >= DATEADD(month, -3, DATEFROMPARTS(YEAR(GETDATE()), MONTH(GETDATE()), 1))
              AND o.Status IN (N'paid', N'shipped', N'delivered')
        ),
        LineTotals AS (
            SELECT l.OrderId, SUM(l.Quantity * l.UnitPrice) AS LinesAmount, COUNT(*) AS LineCount
            FROM dbo.OrderLines AS l
            JOIN RecentOrders AS r ON r.Id = l.OrderId
            GROUP BY l.OrderId
        ),
        Segments AS (
            SELECT c.Id AS CustomerId,
                   CASE WHEN c.LifetimeValue > 10000 THEN N'gold'
                        WHEN c.LifetimeValue > 1000 THEN N'silver'
                        ELSE N'bronze' END AS Segment,
                   c.Country
            FROM dbo.Customers AS c
            WHERE c.DeletedAt IS NULL
        )
        SELECT TOP (500)
               s.Segment,
               s.Country,
               DATEFROMPARTS(YEAR(r.CreatedAt), MONTH(r.CreatedAt), 1) AS [Month],
               COUNT(DISTINCT r.CustomerId) AS Customers,
               COUNT(r.Id) AS Orders,
               SUM(t.LinesAmount) AS Revenue,
               CAST(AVG(CAST(t.LineCount AS decimal(10, 2))) AS decimal(10, 2)) AS AvgLines,
               RANK() OVER (PARTITION BY DATEFROMPARTS(YEAR(r.CreatedAt), MONTH(r.CreatedAt), 1) ORDER BY SUM(t.LinesAmount) DESC) AS RevenueRank,
               (SELECT COUNT(*) FROM dbo.Refunds AS f WHERE f.CustomerId = s.CustomerId) AS Refunds -- correlated
        FROM RecentOrders AS r
        JOIN LineTotals AS t ON t.OrderId = r.Id
        JOIN Segments AS s ON s.CustomerId = r.CustomerId
        LEFT JOIN dbo.Promotions AS p ON p.Code = N'SPRING-' + CONVERT(nvarchar(4), YEAR(r.CreatedAt)) AND p.Active = 1
        WHERE s.Country <> N'XX' AND ISNULL(p.Discount, 0) < 0.5
        GROUP BY s.Segment, s.Country, s.CustomerId, DATEFROMPARTS(YEAR(r.CreatedAt), MONTH(r.CreatedAt), 1)
        HAVING SUM(t.LinesAmount) > 100
        ORDER BY [Month] DESC, Revenue DESC;
        """;
}
