using System;
using NUnit.Framework;
using RwSplit.Tests.Fakes;

namespace RwSplit.Tests;

/// <summary>
/// Batches over a provider that cannot batch (the recording fake, like <c>DbProviderFactory</c>'s default): RwSplit says
/// so through <c>CanCreateBatch</c> and fails with the fix. Routing of batches is covered against real PostgreSQL
/// (<c>RwSplit.IntegrationTests.PostgreSql.BatchTests</c>).
/// </summary>
public sealed class BatchTests
{
    [Test]
    public void A_provider_that_cannot_batch_makes_batches_unavailable_with_the_fix()
    {
        var primary = FakeServer.Create("primary");
        using var dataSource = RwSplitDataSource.Create(o =>
        {
            o.UseDialect(FakeDialect.Instance);
            o.Primary = $"Server={primary.Name}";
            o.HealthMonitoring = false;
        });
        using var connection = dataSource.CreateConnection();

        Assert.That(FakeProviderFactory.Instance.CanCreateBatch, Is.False);
        Assert.That(connection.CanCreateBatch, Is.False);
        Assert.That(connection.ProviderFactory.CanCreateBatch, Is.False);
        var ex = Assert.Throws<NotSupportedException>(() => connection.CreateBatch());
        Assert.That(ex!.Message, Does.Contain("cannot create batches").And.Contain("RwSplitCommand"));
        Assert.Throws<NotSupportedException>(() => connection.ProviderFactory.CreateBatch());
        Assert.Throws<NotSupportedException>(() => connection.ProviderFactory.CreateBatchCommand());
    }
}
