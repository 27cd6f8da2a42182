using System;
using System.Data.Common;
using System.Linq;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;
using NUnit.Framework;
using RwSplit.EntityFrameworkCore.Storage;

namespace RwSplit.EntityFrameworkCoreTests;

/// <summary>The pure parts of the EF package: reading the staleness tag, and which errors the wrapped strategy retries.</summary>
[TestFixture]
public sealed class PureTests
{
    [TestCase("-- rwsplit:max-staleness=00:00:05\n\nSELECT 1", 5_000)]
    [TestCase("-- rwsplit:max-staleness=00:00:00.2500000\r\n\r\nSELECT 1", 250)]
    [TestCase("-- first tag\n-- rwsplit:max-staleness=01:00:00\n\nSELECT 1", 3_600_000)]
    [TestCase("-- rwsplit:max-staleness=5s\n\nSELECT 1", null)]
    [TestCase("-- rwsplit:primary\n\nSELECT 1", null)]
    [TestCase("SELECT '-- rwsplit:max-staleness=00:00:05'", null)]
    [TestCase("-- another tag\n\nSELECT '\n-- rwsplit:max-staleness=00:00:05'", null)]
    public void The_staleness_tag_is_read_from_EFs_leading_tag_lines(string text, int? milliseconds)
    {
        var bound = text.StartsWith("-- ", StringComparison.Ordinal) ? RwSplitContextSession.MaxStalenessOf(text) : null;
        Assert.That(bound, Is.EqualTo(milliseconds is { } ms ? TimeSpan.FromMilliseconds(ms) : (TimeSpan?)null));
    }

    [Test]
    public void WithMaxStaleness_writes_the_tag_the_session_reads_and_refuses_a_bound_that_is_not_positive()
    {
        var tag = RwSplitContextSession.MaxStalenessTag + TimeSpan.FromSeconds(7).ToString("c", System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(RwSplitContextSession.MaxStalenessOf("-- " + tag + "\n\nSELECT 1"), Is.EqualTo(TimeSpan.FromSeconds(7)));
        Assert.That(() => RwSplit.EntityFrameworkCore.RwSplitQueryableExtensions.WithMaxStaleness(Array.Empty<int>().AsQueryable(), TimeSpan.Zero), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    private static readonly Exception Unreachable = new RwSplitException(RwSplitError.EndpointUnreachable, "primary unreachable", new NpgsqlException("connection refused", new System.Net.Sockets.SocketException(111)));

    private static readonly object[] Errors =
    [
        new object[] { Unreachable, true },
        new object[] { new DbUpdateException("save failed", Unreachable), true },
        new object[] { new RwSplitException(RwSplitError.PrimaryChanged, "failover"), true },
        new object[] { new RwSplitException(RwSplitError.CommandTimeout, "timeout"), true },
        new object[] { new RwSplitException(RwSplitError.FallbackLimitReached, "limit"), true },
        new object[] { new RwSplitException(RwSplitError.WriteBlocked, "blocked"), false },
        new object[] { new RwSplitException(RwSplitError.InvalidConfiguration, "bad"), false },
        new object[] { new RwSplitException(RwSplitError.EndpointUnreachable, "no such database", new PostgresException("database \"x\" does not exist", "FATAL", "FATAL", "3D000")), false },
        new object[] { new NpgsqlException("transient, but the provider's strategy decides", new TimeoutException()), false },
        new object[] { new InvalidOperationException("not a database error"), false },
    ];

    [TestCaseSource(nameof(Errors))]
    public void RwSplits_transient_errors_are_retried_and_nothing_else(Exception error, bool retried)
        => Assert.That(RwSplitRetryingExecutionStrategy.IsRwSplitTransient(error), Is.EqualTo(retried));
}
