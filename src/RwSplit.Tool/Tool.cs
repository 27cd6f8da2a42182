using System;
using System.CommandLine;
using System.Threading;
using System.Threading.Tasks;

namespace RwSplit.Tool;

/// <summary>The command tree and what every command shares: options, settings, output, timeout and error handling.</summary>
internal sealed class Tool
{
    public GlobalOptions Options { get; } = new();

    public ToolSettings Settings(ParseResult parse) => ToolSettings.Resolve(parse, Options);

    public RootCommand CreateRoot()
    {
        var root = new RootCommand("rwsplit: RwSplit's endpoint status, routing explanations, distributed transaction inspection and recovery, consistency tokens.");
        Options.AddTo(root);
        root.Subcommands.Add(StatusCommand.Create(this));
        root.Subcommands.Add(ExplainCommand.Create(this));
        root.Subcommands.Add(TxCommands.Create(this));
        root.Subcommands.Add(TokenCommand.Create(this));
        return root;
    }

    /// <summary>
    /// A command's action: output in the format asked for, the timeout applied, and any failure turned into a message on
    /// stderr (passwords removed) and exit code 3.
    /// </summary>
    public Func<ParseResult, CancellationToken, Task<int>> Guard(Func<ParseResult, Output, CancellationToken, Task<int>> body)
        => async (parse, cancellationToken) =>
        {
            var output = new Output(parse.GetValue(Options.Output) == "json");
            var seconds = parse.GetValue(Options.Timeout);
            if (seconds <= 0)
            {
                Output.Error("--timeout must be positive.");
                return ExitCodes.UsageOrConnectionError;
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(seconds));
            try
            {
                return await body(parse, output, timeout.Token);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                Output.Error(cancellationToken.IsCancellationRequested ? "cancelled." : $"the servers did not answer within {seconds} s (--timeout).");
                return ExitCodes.UsageOrConnectionError;
            }
            catch (UsageException ex)
            {
                Output.Error(ex.Message);
                return ExitCodes.UsageOrConnectionError;
            }
#pragma warning disable CA1031 // The tool's last line: every failure becomes a message and exit code 3.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Output.Error(ex.InnerException is { } inner && !ex.Message.Contains(inner.Message, StringComparison.Ordinal) ? $"{ex.Message} ({inner.Message})" : ex.Message);
                return ExitCodes.UsageOrConnectionError;
            }
        };
}
