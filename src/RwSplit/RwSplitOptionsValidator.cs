using System;
using System.Collections.Generic;
using System.Globalization;
using Microsoft.Extensions.Options;
using RwSplit.Topology;

namespace RwSplit;

/// <summary>
/// Validates <see cref="RwSplitOptions"/>: every problem is reported, each naming its fix, and no message contains a
/// password or a full connection string. Used by the DI registration (<c>ValidateOnStart</c>) and by
/// <see cref="RwSplitDataSourceBuilder"/>.
/// </summary>
public sealed class RwSplitOptionsValidator : IValidateOptions<RwSplitOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, RwSplitOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        var prefix = string.IsNullOrEmpty(name) ? "RwSplit" : $"RwSplit '{name}'";

        var dialect = options.Dialect;
        if (dialect is null)
            failures.Add($"{prefix}: no provider selected: call UseNpgsql() (package RwSplit.PostgreSql) or UseSqlServer() (package RwSplit.SqlServer) on the options.");

        EndpointAddress? primary = null;
        if (string.IsNullOrWhiteSpace(options.Primary))
            failures.Add($"{prefix}: no primary: set RwSplitOptions.Primary to the primary's connection string.");
        else if (dialect is not null)
            primary = Parse(dialect, options.Primary, "the primary", failures, prefix);

        if (options.Replicas.Count > TopologySnapshot.MaxReplicas)
            failures.Add($"{prefix}: {options.Replicas.Count} replicas configured; at most {TopologySnapshot.MaxReplicas} are supported.");

        var seen = new Dictionary<EndpointAddress, int>();
        for (var i = 0; i < options.Replicas.Count; i++)
        {
            var replica = options.Replicas[i];
            if (string.IsNullOrWhiteSpace(replica))
            {
                failures.Add($"{prefix}: replica {i} has an empty connection string: remove it from RwSplitOptions.Replicas or fill it in.");
                continue;
            }

            if (dialect is null)
                continue;
            var address = Parse(dialect, replica, $"replica {i}", failures, prefix);
            if (address is null)
                continue;
            if (address.Equals(primary))
                failures.Add($"{prefix}: replica {i} ({address}) is the primary itself: a replica must be a different server (or database); remove it from RwSplitOptions.Replicas.");
            else if (seen.TryGetValue(address, out var other))
                failures.Add($"{prefix}: replica {i} ({address}) is listed twice (also replica {other}): remove the duplicate.");
            else
                seen.Add(address, i);
        }

        if (!Enum.IsDefined(options.Consistency))
            failures.Add($"{prefix}: Consistency {(int)options.Consistency} is not a ReadConsistency value: use Eventual, ReadYourWrites or Strong.");
        if (options.StatementCacheSize is < 16 or > 10_000_000)
            failures.Add($"{prefix}: StatementCacheSize {options.StatementCacheSize} is out of range: use 16 to 10000000 (default 10000).");
        if (options.FunctionCatalogRefreshInterval <= TimeSpan.Zero)
            failures.Add($"{prefix}: FunctionCatalogRefreshInterval must be positive (default 5 minutes).");
        if (options.ReplicaRetryDelay <= TimeSpan.Zero)
            failures.Add($"{prefix}: ReplicaRetryDelay must be positive (default 5 seconds).");
        if (options.HealthCheckInterval < TimeSpan.FromMilliseconds(50) || options.HealthCheckInterval > TimeSpan.FromMinutes(10))
            failures.Add($"{prefix}: HealthCheckInterval {options.HealthCheckInterval} is out of range: use 50 ms to 10 minutes (default 1 second).");
        if (options.MaxReplicaLag <= TimeSpan.Zero)
            failures.Add($"{prefix}: MaxReplicaLag must be positive (default 10 seconds).");
        if (options.ReadmitAfterHealthyProbes is < 1 or > 1000)
            failures.Add($"{prefix}: ReadmitAfterHealthyProbes {options.ReadmitAfterHealthyProbes} is out of range: use 1 to 1000 (default 3).");
        if (!Enum.IsDefined(options.Balancing))
            failures.Add($"{prefix}: Balancing {(int)options.Balancing} is not a ReplicaBalancing value: use RoundRobin, LeastOutstanding or LatencyAware.");
        CheckTokenKeys(options, prefix, failures);
        if (options.ReadYourWritesTimeout < TimeSpan.Zero || options.ReadYourWritesTimeout > TimeSpan.FromSeconds(30))
            failures.Add($"{prefix}: ReadYourWritesTimeout {options.ReadYourWritesTimeout} is out of range: use zero to 30 seconds (default 100 ms).");
        if (!Enum.IsDefined(options.ReadAfterWrite))
            failures.Add($"{prefix}: ReadAfterWrite {(int)options.ReadAfterWrite} is not a ReadAfterWrite value: use OpenPrimary or WaitForReplica.");
        if (options.ReplicaWeights.Count != 0 && options.ReplicaWeights.Count != options.Replicas.Count)
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{prefix}: {options.ReplicaWeights.Count} ReplicaWeights for {options.Replicas.Count} replicas: give one weight per entry of RwSplitOptions.Replicas, in the same order, or none (every replica weighs 1)."));
        for (var i = 0; i < options.ReplicaWeights.Count; i++)
        {
            var weight = options.ReplicaWeights[i];
            if (!(weight >= 0 && weight <= 100))
                failures.Add(string.Create(CultureInfo.InvariantCulture, $"{prefix}: ReplicaWeights[{i}] {weight} is out of range: use 0 (the replica serves reads only when no other can) to 100; 1 is the default weight."));
        }

        if (!(options.PrimaryReadWeight >= 0 && options.PrimaryReadWeight <= 100))
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{prefix}: PrimaryReadWeight {options.PrimaryReadWeight} is out of range: use 0 (the primary serves no reads a replica could) to 100; 1 weighs the primary as one replica."));
        if (options.FallbackReadLimit is < 0 or > 100_000)
            failures.Add($"{prefix}: FallbackReadLimit {options.FallbackReadLimit} is out of range: use 0 to 100000 (default 32).");
        if (!Enum.IsDefined(options.FallbackOverflow))
            failures.Add($"{prefix}: FallbackOverflow {(int)options.FallbackOverflow} is not a FallbackOverflow value: use Wait or Throw.");
        if (options.FallbackWaitTimeout < TimeSpan.Zero || options.FallbackWaitTimeout > TimeSpan.FromMinutes(10))
            failures.Add($"{prefix}: FallbackWaitTimeout {options.FallbackWaitTimeout} is out of range: use zero to 10 minutes (default 5 seconds).");
        if (options.RecoveryGracePeriod < TimeSpan.FromSeconds(1) || options.RecoveryGracePeriod > TimeSpan.FromDays(1))
            failures.Add($"{prefix}: RecoveryGracePeriod {options.RecoveryGracePeriod} is out of range: use 1 second to 1 day (default 1 minute).");
        if (options.RecoveryInterval < TimeSpan.FromSeconds(1) || options.RecoveryInterval > TimeSpan.FromDays(1))
            failures.Add($"{prefix}: RecoveryInterval {options.RecoveryInterval} is out of range: use 1 second to 1 day (default 30 seconds).");
        if (options.AllowHeuristicCommit && !options.DistributedTransactions)
            failures.Add($"{prefix}: AllowHeuristicCommit needs DistributedTransactions: turn DistributedTransactions on, or AllowHeuristicCommit off.");
        if (string.IsNullOrWhiteSpace(options.Name))
            failures.Add($"{prefix}: Name must not be empty (default \"default\").");
        var emptyProcedureName = false;
        foreach (var procedure in options.ReadOnlyProcedures)
        {
            if (string.IsNullOrWhiteSpace(procedure))
            {
                failures.Add($"{prefix}: ReadOnlyProcedures contains an empty name: remove it.");
                emptyProcedureName = true;
            }
        }

        if (dialect is not null && !emptyProcedureName)
        {
            // The dialect reads the declared names its own way (T-SQL: name or schema.name, brackets allowed).
            try
            {
                dialect.CreateClassifier(new HashSet<string>(options.ReadOnlyProcedures, StringComparer.OrdinalIgnoreCase));
            }
            catch (ArgumentException ex)
            {
                failures.Add($"{prefix}: ReadOnlyProcedures: {ex.Message.Split(" (Parameter", 2)[0]}");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static EndpointAddress? Parse(RwSplitDialect dialect, string connectionString, string what, List<string> failures, string prefix)
    {
        try
        {
            return dialect.ParseEndpoint(connectionString);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or KeyNotFoundException or InvalidOperationException)
        {
            // Provider messages name the bad keyword, never the value of a password.
            failures.Add($"{prefix}: the connection string of {what} is malformed: {ex.Message}");
            return null;
        }
    }

    /// <summary>The consistency-token keys: each present and long enough, few, and distinct (the key id names one in a token). No key is quoted.</summary>
    private static void CheckTokenKeys(RwSplitOptions options, string prefix, List<string> failures)
    {
        var keys = options.ConsistencyTokenKeys;
        if (keys.Count > 16)
            failures.Add($"{prefix}: {keys.Count} ConsistencyTokenKeys configured; at most 16 (the signing key and the ones still verifying): remove retired keys.");
        var ids = new HashSet<uint>();
        for (var i = 0; i < keys.Count; i++)
        {
            if (keys[i] is not { } key || key.Length < Routing.ConsistencyTokenKeys.MinimumKeyLength)
                failures.Add($"{prefix}: ConsistencyTokenKeys[{i}] is {(keys[i] is null ? "null" : $"{keys[i].Length} bytes")}: a key has at least {Routing.ConsistencyTokenKeys.MinimumKeyLength} bytes (32 random bytes recommended).");
            else if (!ids.Add(Routing.ConsistencyTokenKeys.IdOf(key)))
                failures.Add($"{prefix}: ConsistencyTokenKeys[{i}] is listed twice: remove the duplicate.");
        }
    }
}
