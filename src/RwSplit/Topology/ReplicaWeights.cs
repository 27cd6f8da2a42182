using System.Collections.Generic;
using System.Numerics;

namespace RwSplit.Topology;

/// <summary>
/// The replicas' read weights (<see cref="RwSplitOptions.ReplicaWeights"/>), fixed when the data source is built: a
/// replica of weight 2 takes twice the new reads of one of weight 1; weight 0 takes reads only when no replica of
/// positive weight is usable. Built only when the weights differ: equal weights route exactly as without them.
/// </summary>
internal sealed class ReplicaWeights
{
    private readonly double[] _weights;

    private ReplicaWeights(double[] weights)
    {
        _weights = weights;
        for (var i = 0; i < weights.Length; i++)
        {
            if (weights[i] > 0)
                Positive |= 1UL << i;
        }
    }

    /// <summary>The replicas of positive weight (one bit each).</summary>
    public ulong Positive { get; }

    /// <summary>The weights, or null when there are none or all are equal (and positive).</summary>
    public static ReplicaWeights? From(IList<double> weights)
    {
        if (weights.Count == 0)
            return null;
        var uniform = weights[0] > 0;
        for (var i = 1; i < weights.Count && uniform; i++)
            uniform = weights[i] == weights[0];
        if (uniform)
            return null;
        var copy = new double[weights.Count];
        weights.CopyTo(copy, 0);
        return new ReplicaWeights(copy);
    }

    public double this[int replica] => _weights[replica];

    /// <summary>
    /// Narrows <paramref name="usable"/> to its replicas of positive weight, unless it has none: a replica of weight 0
    /// serves only when nothing else can.
    /// </summary>
    public ulong Preferred(ulong usable) => (usable & Positive) is var weighted and not 0 ? weighted : usable;

    /// <summary>
    /// Weighted round-robin without state: ticket n falls at frac(n·φ) (a low-discrepancy sequence) of the usable
    /// replicas' total weight, so over consecutive tickets each replica's share converges to its weight's share.
    /// Returns -1 when the usable replicas weigh alike (all equal, or all 0): the caller takes plain round-robin.
    /// </summary>
    public int Pick(ulong usable, uint ticket)
    {
        var total = 0.0;
        double min = double.MaxValue, max = 0;
        for (var bits = usable; bits != 0; bits &= bits - 1)
        {
            var weight = _weights[BitOperations.TrailingZeroCount(bits)];
            total += weight;
            min = weight < min ? weight : min;
            max = weight > max ? weight : max;
        }

        if (min == max)
            return -1;
        var at = unchecked(ticket * 2654435769u) / 4294967296.0 * total; // 2^32 / φ
        var last = -1;
        for (var bits = usable; bits != 0; bits &= bits - 1)
        {
            var replica = BitOperations.TrailingZeroCount(bits);
            var weight = _weights[replica];
            if (weight <= 0)
                continue;
            last = replica;
            at -= weight;
            if (at < 0)
                return replica;
        }

        return last; // rounding at the very end of the range
    }
}
