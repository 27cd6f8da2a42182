using System.Collections.Generic;
using System.Linq;
using NUnit.Framework;
using RwSplit.Topology;

namespace RwSplit.Tests.Topology;

/// <summary>Ejection and re-admission with hysteresis.</summary>
public sealed class HealthStateTests
{
    private const ProbeOutcome H = ProbeOutcome.Healthy;
    private const ProbeOutcome L = ProbeOutcome.Lagging;
    private const ProbeOutcome F = ProbeOutcome.Failed;
    private const ProbeOutcome N = ProbeOutcome.NotAReplica;

    private static IEnumerable<TestCaseData> Sequences()
    {
        // probes, readmitAfter, admitted after each probe
        yield return new TestCaseData(new[] { H, H, H }, 3, new[] { true, true, true }).SetName("healthy stays admitted");
        yield return new TestCaseData(new[] { F }, 3, new[] { false }).SetName("one failure ejects at once");
        yield return new TestCaseData(new[] { L }, 3, new[] { false }).SetName("lag past the limit ejects at once");
        yield return new TestCaseData(new[] { N }, 3, new[] { false }).SetName("a promoted replica is not a read replica");
        yield return new TestCaseData(new[] { F, H, H, H, H }, 3, new[] { false, false, false, true, true }).SetName("re-admitted on the third good probe");
        yield return new TestCaseData(new[] { F, H, H, F, H, H, H }, 3, new[] { false, false, false, false, false, false, true }).SetName("a bad probe resets the count (flapping)");
        yield return new TestCaseData(new[] { L, H, L, H, H }, 2, new[] { false, false, false, false, true }).SetName("lag flapping needs consecutive good probes");
        yield return new TestCaseData(new[] { F, H }, 1, new[] { false, true }).SetName("readmitAfter 1 re-admits at once");
    }

    [TestCaseSource(nameof(Sequences))]
    public void Sequence(object probes, int readmitAfter, bool[] expected) // internal enum: boxed through the public signature
    {
        var state = HealthState.Initial;
        var admitted = ((ProbeOutcome[])probes).Select(p => (state = state.Next(p, readmitAfter)).Admitted).ToArray();
        Assert.That(admitted, Is.EqualTo(expected));
    }

    [Test]
    public void Counters()
    {
        var state = HealthState.Initial.Next(F, 3).Next(F, 3);
        Assert.That(state.ConsecutiveUnhealthy, Is.EqualTo(2));
        state = state.Next(H, 3);
        Assert.That((state.ConsecutiveHealthy, state.ConsecutiveUnhealthy), Is.EqualTo((1, 0)));
    }
}
