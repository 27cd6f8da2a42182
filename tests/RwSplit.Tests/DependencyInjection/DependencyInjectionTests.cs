using System;
using System.Data.Common;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using NUnit.Framework;
using RwSplit.Tests.Fakes;

namespace RwSplit.Tests.DependencyInjection;

public sealed class DependencyInjectionTests
{
    private static void Configure(RwSplitOptions o)
    {
        o.UseDialect(FakeDialect.Instance);
        o.Primary = "Server=di-primary";
        o.Replicas.Add("Server=di-replica");
    }

    [Test]
    public void Registers_data_source_singleton_and_transient_connections()
    {
        var services = new ServiceCollection().AddReadWriteSplit(Configure);
        using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true, ValidateOnBuild = true });
        var dataSource = provider.GetRequiredService<RwSplitDataSource>();
        Assert.That(provider.GetRequiredService<DbDataSource>(), Is.SameAs(dataSource));
        Assert.That(provider.GetRequiredService<RwSplitDataSource>(), Is.SameAs(dataSource));
        var c1 = provider.GetRequiredService<DbConnection>();
        var c2 = provider.GetRequiredService<RwSplitConnection>();
        Assert.That(c1, Is.InstanceOf<RwSplitConnection>());
        Assert.That(c1, Is.Not.SameAs(c2));
        Assert.That(((RwSplitConnection)c1).OwningDataSource, Is.SameAs(dataSource));
        Assert.That(dataSource.PrimaryAddress.Host, Is.EqualTo("di-primary"));
        Assert.That(dataSource.Name, Is.EqualTo("default"));
    }

    [Test]
    public void Keyed_registrations_resolve_by_key()
    {
        var services = new ServiceCollection()
            .AddReadWriteSplit("orders", o => { Configure(o); o.Primary = "Server=orders-primary"; })
            .AddReadWriteSplit("billing", o => { Configure(o); o.Primary = "Server=billing-primary"; });
        using var provider = services.BuildServiceProvider();
        var orders = provider.GetRequiredKeyedService<RwSplitDataSource>("orders");
        var billing = provider.GetRequiredKeyedService<DbDataSource>("billing");
        Assert.That(orders.PrimaryAddress.Host, Is.EqualTo("orders-primary"));
        Assert.That(((RwSplitDataSource)billing).PrimaryAddress.Host, Is.EqualTo("billing-primary"));
        Assert.That(orders.Name, Is.EqualTo("orders"));
        Assert.That(((RwSplitConnection)provider.GetRequiredKeyedService<DbConnection>("billing")).OwningDataSource, Is.SameAs(billing));
        Assert.That(provider.GetService<RwSplitDataSource>(), Is.Null, "no unkeyed registration was made");
    }

    /// <summary>
    /// The container's data sources share one recovery, owned by the container (no process-wide registry): a branch one
    /// prepared is resolved from another's decision, also after a restart. Without DI each data source has its own.
    /// </summary>
    [Test]
    public void The_data_sources_of_a_container_share_one_recovery_which_the_container_owns()
    {
        var services = new ServiceCollection()
            .AddReadWriteSplit("orders", o => { Configure(o); o.Primary = "Server=orders-primary"; })
            .AddReadWriteSplit("billing", o => { Configure(o); o.Primary = "Server=billing-primary"; });
        RwSplit.Transactions.RwSplitRecovery recovery;
        using (var provider = services.BuildServiceProvider())
        {
            var orders = provider.GetRequiredKeyedService<RwSplitDataSource>("orders");
            var billing = provider.GetRequiredKeyedService<RwSplitDataSource>("billing");
            recovery = provider.GetRequiredService<RwSplit.Transactions.RwSplitRecovery>();
            Assert.That((orders.Recovery, billing.Recovery), Is.EqualTo((recovery, recovery)));
            Assert.That(recovery.DataSources, Is.EquivalentTo(new[] { orders, billing }));
        }

        Assert.That(recovery.DataSources, Is.Empty, "the container disposed its data sources, which left the recovery");

        using var alone = new RwSplitDataSourceBuilder().Configure(Configure).Build();
        using var other = new RwSplitDataSourceBuilder().Configure(Configure).Build();
        Assert.That(alone.Recovery, Is.Not.Null.And.Not.SameAs(other.Recovery));
        Assert.That(alone.Recovery!.DataSources, Is.EquivalentTo(new[] { alone }));

        using var shared = new RwSplit.Transactions.RwSplitRecovery();
        using var joined = new RwSplitDataSourceBuilder().Configure(Configure).UseRecovery(shared).Build();
        Assert.That(joined.Recovery, Is.SameAs(shared));
        using var off = new RwSplitDataSourceBuilder().Configure(o => { Configure(o); o.DistributedTransactions = false; }).UseRecovery(shared).Build();
        Assert.That(off.Recovery, Is.Null, "no distributed transactions, nothing to recover");
        Assert.That(shared.DataSources, Is.EquivalentTo(new[] { joined }));
    }

    [Test]
    public void Registering_twice_is_idempotent_and_configurations_combine()
    {
        var services = new ServiceCollection()
            .AddReadWriteSplit(Configure)
            .AddReadWriteSplit(o => o.Consistency = ReadConsistency.Strong);
        Assert.That(services, Has.Exactly(1).Matches<ServiceDescriptor>(d => d.ServiceType == typeof(RwSplitDataSource)));
        using var provider = services.BuildServiceProvider();
        Assert.That(provider.GetRequiredService<RwSplitDataSource>().Consistency, Is.EqualTo(ReadConsistency.Strong));
    }

    [Test]
    public void Invalid_options_fail_on_first_use_with_every_problem()
    {
        var services = new ServiceCollection().AddReadWriteSplit(o => o.StatementCacheSize = 0);
        using var provider = services.BuildServiceProvider();
        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<RwSplitDataSource>());
        Assert.That(ex!.Failures, Has.Exactly(3).Items); // provider, primary, cache size
    }

    [Test]
    public void Validation_runs_on_start()
    {
        var services = new ServiceCollection().AddReadWriteSplit(o => o.Primary = "Server=p");
        using var provider = services.BuildServiceProvider();
        var validator = provider.GetRequiredService<IStartupValidator>();
        Assert.Throws<OptionsValidationException>(() => validator.Validate());
    }

    [Test]
    public void Logger_factory_comes_from_the_container()
    {
        var services = new ServiceCollection().AddSingleton<ILoggerFactory>(NullLoggerFactory.Instance).AddReadWriteSplit(Configure);
        using var provider = services.BuildServiceProvider();
        var options = provider.GetRequiredService<IOptionsMonitor<RwSplitOptions>>().Get(Options.DefaultName);
        Assert.That(options.LoggerFactory, Is.SameAs(NullLoggerFactory.Instance));
    }

    [Test]
    public void Container_disposes_the_data_source()
    {
        var provider = new ServiceCollection().AddReadWriteSplit(Configure).BuildServiceProvider();
        var dataSource = provider.GetRequiredService<RwSplitDataSource>();
        provider.Dispose();
        Assert.Throws<ObjectDisposedException>(() => dataSource.CreateConnection());
    }
}
