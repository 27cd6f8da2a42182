using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Data.Common;
using System.IO;
using System.Linq;
using System.Text.Json;
using RwSplit.PostgreSql;
using RwSplit.SqlServer;
using RwSplit.Transactions;

namespace RwSplit.Tool;

/// <summary>
/// Where the tool connects, resolved from (highest first) the command line, the environment (<c>RWSPLIT_*</c>) and a
/// settings file. Connection strings are only handed to RwSplit, never printed.
/// </summary>
internal sealed class ToolSettings
{
    private static readonly JsonSerializerOptions FileOptions = new() { PropertyNameCaseInsensitive = true, ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    private ToolSettings(string provider, string? primary, IReadOnlyList<string> replicas, IReadOnlyList<string> participants, IReadOnlyList<byte[]> tokenKeys, TimeSpan? maxReplicaLag, TimeSpan? recoveryGracePeriod)
    {
        Provider = provider;
        Primary = primary;
        Replicas = replicas;
        Participants = participants;
        TokenKeys = tokenKeys;
        MaxReplicaLag = maxReplicaLag;
        RecoveryGracePeriod = recoveryGracePeriod;
    }

    public string Provider { get; }

    public string? Primary { get; }

    public IReadOnlyList<string> Replicas { get; }

    public IReadOnlyList<string> Participants { get; }

    public IReadOnlyList<byte[]> TokenKeys { get; }

    public TimeSpan? MaxReplicaLag { get; }

    public TimeSpan? RecoveryGracePeriod { get; }

    /// <summary>The settings file's shape (docs/tool.md).</summary>
    private sealed class SettingsFile
    {
        public string? Provider { get; set; }

        public string? Primary { get; set; }

        public string[]? Replicas { get; set; }

        public string[]? Participants { get; set; }

        public string[]? ConsistencyTokenKeys { get; set; }

        public double? MaxReplicaLagSeconds { get; set; }

        public double? RecoveryGracePeriodSeconds { get; set; }
    }

    public static ToolSettings Resolve(ParseResult parse, GlobalOptions options)
    {
        var file = ReadFile(parse.GetValue(options.Settings)?.FullName ?? Environment.GetEnvironmentVariable("RWSPLIT_SETTINGS"));
        var provider = parse.GetValue(options.Provider) ?? Environment.GetEnvironmentVariable("RWSPLIT_PROVIDER") ?? file?.Provider ?? "postgresql";
        if (provider is not ("postgresql" or "sqlserver"))
            throw new UsageException($"Unknown provider '{provider}': use postgresql or sqlserver.");

        var primary = parse.GetValue(options.Primary);
        var replicas = parse.GetValue(options.Replicas) ?? [];
        var participants = parse.GetValue(options.Participants) ?? [];
        WarnAboutPasswords(primary is null ? replicas.Concat(participants) : [primary, .. replicas, .. participants]);

        primary ??= Environment.GetEnvironmentVariable("RWSPLIT_PRIMARY") ?? file?.Primary;
        return new ToolSettings(
            provider,
            string.IsNullOrWhiteSpace(primary) ? null : primary,
            replicas.Length > 0 ? replicas : SplitList(Environment.GetEnvironmentVariable("RWSPLIT_REPLICAS")) ?? file?.Replicas ?? [],
            participants.Length > 0 ? participants : SplitList(Environment.GetEnvironmentVariable("RWSPLIT_PARTICIPANTS")) ?? file?.Participants ?? [],
            ParseKeys(Environment.GetEnvironmentVariable("RWSPLIT_TOKEN_KEYS")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? file?.ConsistencyTokenKeys ?? []),
            file?.MaxReplicaLagSeconds is { } lag ? TimeSpan.FromSeconds(lag) : null,
            file?.RecoveryGracePeriodSeconds is { } grace ? TimeSpan.FromSeconds(grace) : null);
    }

    /// <summary>The primary's connection string, or a usage error saying where to give it.</summary>
    public string RequirePrimary()
        => Primary ?? throw new UsageException("No primary: pass --primary \"Host=...;Username=...\" (no password: use PGPASSWORD, a passfile or --settings), set RWSPLIT_PRIMARY, or give a settings file with \"primary\".");

    /// <summary>A data source over the primary and the replicas, monitoring them, taking part in no distributed transaction.</summary>
    /// <param name="maxReplicaLag">The lag past which a replica is ejected; <see langword="null"/> for the settings file's, else RwSplit's default.</param>
    public RwSplitDataSource CreateRoutingDataSource(TimeSpan? maxReplicaLag = null)
    {
        var primary = RequirePrimary();
        return RwSplitDataSource.Create(o =>
        {
            UseProvider(o);
            o.Name = "rwsplit-tool";
            o.Primary = primary;
            foreach (var replica in Replicas)
                o.Replicas.Add(replica);
            o.HealthMonitoring = true;
            o.DistributedTransactions = false;
            if ((maxReplicaLag ?? MaxReplicaLag) is { } lag)
                o.MaxReplicaLag = lag;
        });
    }

    /// <summary>
    /// One data source per database (the primary and each participant), all in one recovery that never runs a pass by
    /// itself: the tool acts only when told (<c>tx recover</c>, <c>tx resolve</c>, <c>tx heuristics --ack</c>).
    /// </summary>
    public (RwSplitRecovery Recovery, List<RwSplitDataSource> DataSources) CreateRecovery(TimeSpan? gracePeriod)
    {
        var recovery = new RwSplitRecovery();
        recovery.Dispose(); // stops (and so never starts) the periodic passes; explicit calls still work
        var dataSources = new List<RwSplitDataSource>();
        try
        {
            var index = 0;
            foreach (var cs in new[] { RequirePrimary() }.Concat(Participants))
            {
                var name = $"rwsplit-tool-{index++}";
                dataSources.Add(RwSplitDataSource.Create(o =>
                {
                    UseProvider(o);
                    o.Name = name;
                    o.Primary = cs;
                    o.HealthMonitoring = false;
                    o.DistributedTransactions = true;
                    o.AllowHeuristicCommit = Provider == "sqlserver"; // lets recovery look for heuristic outcomes
                    o.Recovery = recovery;
                    if ((gracePeriod ?? RecoveryGracePeriod) is { } grace)
                        o.RecoveryGracePeriod = grace;
                }));
            }
        }
        catch
        {
            foreach (var dataSource in dataSources)
                dataSource.Dispose();
            throw;
        }

        return (recovery, dataSources);
    }

    private void UseProvider(RwSplitOptions options)
    {
        if (Provider == "sqlserver")
            options.UseSqlServer();
        else
            options.UseNpgsql();
    }

    private static SettingsFile? ReadFile(string? path)
    {
        if (string.IsNullOrWhiteSpace(path))
            return null;
        if (!File.Exists(path))
            throw new UsageException($"The settings file '{path}' does not exist.");
        try
        {
            return JsonSerializer.Deserialize<SettingsFile>(File.ReadAllText(path), FileOptions) ?? new SettingsFile();
        }
        catch (JsonException ex)
        {
            // The position only: the message of a failed conversion could quote a value.
            throw new UsageException($"The settings file '{path}' is not valid JSON of the documented shape (line {ex.LineNumber + 1}, position {ex.BytePositionInLine}).");
        }
    }

    /// <summary>RWSPLIT_REPLICAS and RWSPLIT_PARTICIPANTS: connection strings separated by '|' or new lines.</summary>
    private static string[]? SplitList(string? value)
        => string.IsNullOrWhiteSpace(value) ? null : value.Split(['|', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static List<byte[]> ParseKeys(IEnumerable<string> keys)
    {
        var result = new List<byte[]>();
        foreach (var key in keys)
        {
            try
            {
                result.Add(Convert.FromBase64String(key));
            }
            catch (FormatException)
            {
                throw new UsageException($"Consistency token key number {result.Count + 1} is not base64 (the key itself is not shown).");
            }
        }

        return result;
    }

    /// <summary>A password on the command line is visible to every user of the machine (ps): said on stderr, never echoed.</summary>
    private static void WarnAboutPasswords(IEnumerable<string> connectionStrings)
    {
        foreach (var cs in connectionStrings)
        {
            var builder = new DbConnectionStringBuilder();
            try
            {
                builder.ConnectionString = cs;
            }
            catch (ArgumentException)
            {
                throw new UsageException("A connection string given on the command line is malformed (it is not shown).");
            }

            if (builder.ContainsKey("password") || builder.ContainsKey("pwd"))
            {
                Console.Error.WriteLine("warning: a connection string on the command line contains a password, which other users can see (ps, shell history). Use PGPASSWORD, RWSPLIT_PRIMARY/RWSPLIT_REPLICAS or --settings instead.");
                return;
            }
        }
    }
}
