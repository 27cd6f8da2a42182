using System;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using NUnit.Framework;
using RwSplit.Diagnostics;

namespace RwSplit.IntegrationTests.Diagnostics;

/// <summary>
/// Every log event RwSplit declares and every instrument of its meter is asserted by some test (through
/// <c>TelemetryCapture.Logged(id)</c> / <c>Measured("name")</c>), so that telemetry cannot go unchecked again: a new event
/// or instrument without a test fails here. The few exempted are named with the reason no test can provoke them.
/// </summary>
[TestFixture]
public sealed partial class TelemetryCoverageTests
{
    /// <summary>Catch-alls for failures no input provokes (a defect in RwSplit itself); they only log and go on.</summary>
    private static readonly Dictionary<int, string> Exempt = new()
    {
        [2007] = "the topology monitor's catch-all around a whole round (probe failures are handled per endpoint)",
        [3004] = "the periodic recovery pass's catch-all (unreachable databases are handled per database, event 3003)",
    };

    [GeneratedRegex(@"\bLogged\((\d{4})\)")]
    private static partial Regex LoggedCall();

    [GeneratedRegex(@"\bMeasured\(""([a-z_.]+)""\)")]
    private static partial Regex MeasuredCall();

    /// <summary>The repository's <c>tests</c> folder, found from the test assembly upwards (CI builds map source paths away).</summary>
    private static string TestsDirectory()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "RwSplit.sln")))
                return Path.Combine(directory.FullName, "tests");
        }

        throw new DirectoryNotFoundException($"No RwSplit.sln above {AppContext.BaseDirectory}: run the tests from the repository.");
    }

    private static string AllTestSources()
        => string.Join('\n', Directory.EnumerateFiles(TestsDirectory(), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal) && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Select(File.ReadAllText));

    [Test]
    public void Every_log_event_is_asserted_by_a_test()
    {
        var log = typeof(RwSplitDataSource).Assembly.GetType("RwSplit.Diagnostics.Log", throwOnError: true)!;
        var declared = log.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)
            .SelectMany(m => m.GetCustomAttributes().Where(a => a.GetType().Name == "LoggerMessageAttribute"))
            .Select(a => (int)a.GetType().GetProperty("EventId")!.GetValue(a)!)
            .ToHashSet();
        Assert.That(declared, Has.Count.GreaterThan(20), "the declared events were found");
        var asserted = LoggedCall().Matches(AllTestSources()).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToHashSet();
        var missing = declared.Except(asserted).Except(Exempt.Keys).Order().ToList();
        Assert.That(missing, Is.Empty, $"log events no test asserts: {string.Join(", ", missing)}");
        Assert.That(Exempt.Keys.Except(declared), Is.Empty, "an exempted event no longer exists");
    }

    [Test]
    public void Every_instrument_is_asserted_by_a_test()
    {
        RuntimeHelpers.RunClassConstructor(typeof(RwSplitTelemetry).TypeHandle);
        var declared = new HashSet<string>();
        using (var listener = new MeterListener())
        {
            listener.InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter.Name == RwSplitTelemetry.Name)
                    declared.Add(instrument.Name);
            };
            listener.Start();
        }

        Assert.That(declared, Has.Count.GreaterThan(10), "the declared instruments were found");
        var asserted = MeasuredCall().Matches(AllTestSources()).Select(m => m.Groups[1].Value).ToHashSet();
        var missing = declared.Except(asserted).Order().ToList();
        Assert.That(missing, Is.Empty, $"instruments no test asserts: {string.Join(", ", missing)}");
    }
}
