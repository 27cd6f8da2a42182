using System;
using System.Linq;
using Microsoft.Extensions.Options;
using NUnit.Framework;
using RwSplit.SqlServer;
using RwSplit.Tests.Fakes;

namespace RwSplit.Tests;

/// <summary>Every default of <see cref="RwSplitOptions"/> and every invalid value, each with the fix in its message.</summary>
public sealed class OptionsTests
{
    private static RwSplitOptions Valid()
    {
        var options = new RwSplitOptions { Primary = "Server=p;Password=topsecret" };
        options.UseDialect(FakeDialect.Instance);
        options.Replicas.Add("Server=r1");
        return options;
    }

    private static string[] Failures(RwSplitOptions options)
    {
        var result = new RwSplitOptionsValidator().Validate(null, options);
        return result.Failed ? result.Failures.ToArray() : Array.Empty<string>();
    }

    /// <summary>
    /// Least-outstanding is the default balancing: with each server capped at 0.25 CPU it gave read-heavy work 1.88–2.40×
    /// raw Npgsql against round-robin's 1.54–1.76× (docs/benchmarks.md section 9). Sequential use is unchanged: with no
    /// command in flight it takes the replica round-robin would.
    /// </summary>
    [Test]
    public void Reads_are_balanced_by_least_outstanding_commands_by_default()
        => Assert.That(new RwSplitOptions().Balancing, Is.EqualTo(ReplicaBalancing.LeastOutstanding));

    [Test]
    public void Consistency_token_keys_must_be_long_enough_distinct_and_few_and_are_never_quoted()
    {
        var options = Valid();
        Assert.That(options.ConsistencyTokenKeys, Is.Empty, "default: a random key of the data source's own");
        var good = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        options.ConsistencyTokenKeys.Add(good);
        Assert.That(Failures(options), Is.Empty);

        var secret = System.Text.Encoding.ASCII.GetBytes("short-secret");
        options.ConsistencyTokenKeys.Add(secret);
        options.ConsistencyTokenKeys.Add(null!);
        options.ConsistencyTokenKeys.Add(good.ToArray());
        var failures = Failures(options);
        Assert.That(failures, Has.One.Contains("ConsistencyTokenKeys[1] is 12 bytes: a key has at least 16 bytes"));
        Assert.That(failures, Has.One.Contains("ConsistencyTokenKeys[2] is null"));
        Assert.That(failures, Has.One.Contains("ConsistencyTokenKeys[3] is listed twice"));
        Assert.That(string.Join("\n", failures), Does.Not.Contain("short-secret"));

        var many = Valid();
        for (var i = 0; i < 17; i++)
            many.ConsistencyTokenKeys.Add(Enumerable.Repeat((byte)i, 32).ToArray());
        Assert.That(Failures(many), Has.One.Contains("at most 16"));
    }

    [Test]
    public void Heuristic_commit_without_distributed_transactions_is_refused_naming_the_fix()
    {
        var options = Valid();
        options.AllowHeuristicCommit = true;
        Assert.That(Failures(options), Is.Empty);
        options.DistributedTransactions = false;
        Assert.That(Failures(options), Has.One.Contains("AllowHeuristicCommit needs DistributedTransactions"));
    }

    [Test]
    public void Defaults()
    {
        var options = new RwSplitOptions();
        Assert.Multiple(() =>
        {
            Assert.That(options.Dialect, Is.Null);
            Assert.That(options.Primary, Is.Null);
            Assert.That(options.Replicas, Is.Empty);
            Assert.That(options.ReplicaWeights, Is.Empty, "every replica weighs 1");
            Assert.That(options.PrimaryReadWeight, Is.EqualTo(1));
            Assert.That(options.Consistency, Is.EqualTo(ReadConsistency.ReadYourWrites));
            Assert.That(options.ReadOnlyProcedures, Is.Empty);
            Assert.That(options.ReadOnlyFunctions, Is.Empty);
            Assert.That(options.StatementCacheSize, Is.EqualTo(10_000));
            Assert.That(options.FunctionCatalogRefreshInterval, Is.EqualTo(TimeSpan.FromMinutes(5)));
            Assert.That(options.ReplicaRetryDelay, Is.EqualTo(TimeSpan.FromSeconds(5)));
            Assert.That(options.DistributedTransactions, Is.True);
            Assert.That(options.AutoCreateDecisionTable, Is.True);
            Assert.That(options.AllowHeuristicCommit, Is.False, "heuristic commit is opt-in");
            Assert.That(options.RecoveryGracePeriod, Is.EqualTo(TimeSpan.FromMinutes(1)));
            Assert.That(options.RecoveryInterval, Is.EqualTo(TimeSpan.FromSeconds(30)));
            Assert.That(options.RetryMisroutedWrites, Is.True);
            Assert.That(options.LoggerFactory, Is.Null);
            Assert.That(options.Name, Is.EqualTo("default"));
        });
    }

    [Test]
    public void Valid_options_pass() => Assert.That(Failures(Valid()), Is.Empty);

    [Test]
    public void Names_are_case_insensitive_sets()
    {
        var options = Valid();
        options.ReadOnlyProcedures.Add("dbo.GetOrders");
        Assert.That(options.ReadOnlyProcedures.Contains("DBO.GETORDERS"), Is.True);
    }

    [Test]
    public void No_provider() => Assert.That(Failures(new RwSplitOptions { Primary = "Server=p" }), Has.One.Contains("UseNpgsql()").And.One.Contains("UseSqlServer()"));

    [TestCase(null)]
    [TestCase("")]
    [TestCase("   ")]
    public void No_primary(string? primary)
    {
        var options = Valid();
        options.Primary = primary;
        Assert.That(Failures(options), Has.One.Contains("set RwSplitOptions.Primary"));
    }

    [Test]
    public void Malformed_primary_names_the_keyword_not_the_password()
    {
        var options = Valid();
        options.Primary = "Server=p;Colour=blue;Password=topsecret";
        var failures = Failures(options);
        Assert.That(failures, Has.One.Contains("the primary is malformed").And.Contains("colour"));
        Assert.That(string.Join("\n", failures), Does.Not.Contain("topsecret"));
    }

    [Test]
    public void Malformed_replica()
    {
        var options = Valid();
        options.Replicas.Add("Database=x");
        Assert.That(Failures(options), Has.One.Contains("replica 1 is malformed").And.Contains("Server is missing"));
    }

    [Test]
    public void Empty_replica()
    {
        var options = Valid();
        options.Replicas.Add(" ");
        Assert.That(Failures(options), Has.One.Contains("replica 1 has an empty connection string"));
    }

    [Test]
    public void Replica_equal_to_primary()
    {
        var options = Valid();
        options.Replicas.Add("Server=P;Password=other");
        var failures = Failures(options);
        Assert.That(failures, Has.One.Contains("replica 1 (P/db) is the primary itself"));
        Assert.That(string.Join("\n", failures), Does.Not.Contain("topsecret").And.Not.Contain("other"));
    }

    [Test]
    public void Duplicate_replica()
    {
        var options = Valid();
        options.Replicas.Add("Server=r1");
        Assert.That(Failures(options), Has.One.Contains("listed twice"));
    }

    [Test]
    public void Too_many_replicas()
    {
        var options = Valid();
        for (var i = 0; i < 64; i++)
            options.Replicas.Add($"Server=extra{i}");
        Assert.That(Failures(options), Has.One.Contains("at most 64"));
    }

    [Test]
    public void Replica_weights_need_one_per_replica_each_from_0_to_100()
    {
        var options = Valid();
        options.Replicas.Add("Server=r2");
        options.ReplicaWeights.Add(1);
        Assert.That(Failures(options), Has.One.Contains("1 ReplicaWeights for 2 replicas").And.One.Contains("one weight per entry"));
        options.ReplicaWeights.Add(2);
        Assert.That(Failures(options), Is.Empty);
        options.ReplicaWeights[0] = -1;
        options.ReplicaWeights[1] = double.NaN;
        Assert.That(Failures(options), Has.One.Contains("ReplicaWeights[0] -1 is out of range").And.One.Contains("ReplicaWeights[1] NaN is out of range"));
        options.ReplicaWeights[0] = 0;
        options.ReplicaWeights[1] = 100;
        Assert.That(Failures(options), Is.Empty, "0 (a standby) and 100 are allowed");
    }

    [TestCase(15)]
    [TestCase(0)]
    [TestCase(-1)]
    [TestCase(10_000_001)]
    public void Statement_cache_size_out_of_range(int size)
    {
        var options = Valid();
        options.StatementCacheSize = size;
        Assert.That(Failures(options), Has.One.Contains("StatementCacheSize"));
    }

    [Test]
    public void Non_positive_intervals()
    {
        var options = Valid();
        options.FunctionCatalogRefreshInterval = TimeSpan.Zero;
        options.ReplicaRetryDelay = TimeSpan.FromSeconds(-1);
        Assert.That(Failures(options), Has.Length.EqualTo(2));
    }

    [Test]
    public void Undefined_consistency()
    {
        var options = Valid();
        options.Consistency = (ReadConsistency)42;
        Assert.That(Failures(options), Has.One.Contains("Eventual, ReadYourWrites or Strong"));
    }

    [Test]
    public void Empty_name_and_empty_procedure()
    {
        var options = Valid();
        options.Name = "";
        options.ReadOnlyProcedures.Add("");
        Assert.That(Failures(options), Has.Length.EqualTo(2));
    }

    [TestCase("srv.db.dbo.GetOrders")]
    [TestCase("dbo.GetOrders(1)")]
    public void A_read_only_procedure_name_the_dialect_cannot_read_is_refused_with_the_form_to_use(string name)
    {
        var options = new RwSplitOptions { Primary = "Server=p;Password=topsecret" }.UseSqlServer();
        options.ReadOnlyProcedures.Add("dbo.Fine");
        options.ReadOnlyProcedures.Add(name);
        Assert.That(Failures(options), Has.One.Contains("ReadOnlyProcedures").And.One.Contains("schema.name"));
    }

    [Test]
    public void Every_problem_is_reported_at_once_by_the_builder()
    {
        var ex = Assert.Throws<OptionsValidationException>(() => new RwSplitDataSourceBuilder().Configure(o =>
        {
            o.Primary = "";
            o.StatementCacheSize = 1;
            o.ReplicaRetryDelay = TimeSpan.Zero;
        }).Build());
        Assert.That(ex!.Failures.Count(), Is.EqualTo(4)); // provider, primary, cache size, retry delay
    }

    [Test]
    public void Built_data_source_is_frozen()
    {
        var options = Valid();
        var builder = new RwSplitDataSourceBuilder();
        builder.Configure(o =>
        {
            o.UseDialect(FakeDialect.Instance);
            o.Primary = "Server=p";
            o.Consistency = ReadConsistency.Strong;
        });
        using var dataSource = builder.Build();
        builder.Options.Consistency = ReadConsistency.Eventual;
        builder.Options.Replicas.Add("Server=late");
        Assert.That(dataSource.Consistency, Is.EqualTo(ReadConsistency.Strong));
        Assert.That(dataSource.ReplicaAddresses, Is.Empty);
        Assert.That(options.Replicas, Has.Count.EqualTo(1));
    }
}
