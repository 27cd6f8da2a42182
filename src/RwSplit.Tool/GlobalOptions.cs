using System.CommandLine;
using System.IO;

namespace RwSplit.Tool;

/// <summary>The options every command takes (connection, output format, timeout).</summary>
internal sealed class GlobalOptions
{
    public Option<string?> Provider { get; } = new("--provider")
    {
        Description = "postgresql (default) or sqlserver.",
        Recursive = true,
    };

    public Option<string?> Primary { get; } = new("--primary")
    {
        Description = "The primary's connection string, without a password (use PGPASSWORD, RWSPLIT_PRIMARY or --settings for secrets).",
        Recursive = true,
    };

    public Option<string[]> Replicas { get; } = new("--replica")
    {
        Description = "A replica's connection string (repeat for each replica), without a password.",
        Recursive = true,
    };

    public Option<string[]> Participants { get; } = new("--participant")
    {
        Description = "tx commands: another database taking part in the same distributed transactions (its primary's connection string; repeatable).",
        Recursive = true,
    };

    public Option<FileInfo?> Settings { get; } = new("--settings")
    {
        Description = "A JSON settings file (provider, primary, replicas, participants, consistencyTokenKeys, ...; see docs/tool.md).",
        Recursive = true,
    };

    public Option<string> Output { get; } = new("--output", "-o")
    {
        Description = "table (default) or json.",
        Recursive = true,
        DefaultValueFactory = _ => "table",
    };

    public Option<double> Timeout { get; } = new("--timeout")
    {
        Description = "Seconds to wait for the servers before giving up (exit code 3). Default: 30.",
        Recursive = true,
        DefaultValueFactory = _ => 30,
    };

    public GlobalOptions()
    {
        Provider.AcceptOnlyFromAmong("postgresql", "sqlserver");
        Output.AcceptOnlyFromAmong("table", "json");
    }

    public void AddTo(RootCommand root)
    {
        foreach (var option in new Option[] { Provider, Primary, Replicas, Participants, Settings, Output, Timeout })
            root.Options.Add(option);
    }
}
