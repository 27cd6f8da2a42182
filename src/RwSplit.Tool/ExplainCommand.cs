using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Routing;

namespace RwSplit.Tool;

/// <summary><c>rwsplit explain "&lt;sql&gt;"</c>: the classification and the routing decision of a text, without running it.</summary>
internal static class ExplainCommand
{
    internal sealed record ClassificationDocument(StatementKind Kind, SessionEffect SessionEffect, RoutingHint Hint, IReadOnlyList<string> Functions, string? Detail);

    internal sealed record ExplainDocument(ClassificationDocument Classification, StatementKind RoutedAs, ReadConsistency Consistency, RouteTarget Target, int? ReplicaIndex, string? Endpoint, RoutingReason Reason, string Explanation);

    public static Command Create(Tool tool)
    {
        var sql = new Argument<string>("sql") { Description = "The statement text (it is not run, and not printed)." };
        var consistency = new Option<string?>("--consistency") { Description = "eventual, read-your-writes or strong (default: RwSplit's default, read-your-writes)." };
        consistency.AcceptOnlyFromAmong("eventual", "read-your-writes", "strong");
        var command = new Command("explain", "The statement's classification, and where RwSplit would route it now and why, for a consistency, without running it.");
        command.Arguments.Add(sql);
        command.Options.Add(consistency);
        command.SetAction(tool.Guard((parse, output, cancellationToken) => RunAsync(tool, parse, output, parse.GetRequiredValue(sql), parse.GetValue(consistency), cancellationToken)));
        return command;
    }

    private static async Task<int> RunAsync(Tool tool, ParseResult parse, Output output, string sql, string? consistency, CancellationToken cancellationToken)
    {
        ReadConsistency? wanted = consistency switch
        {
            "eventual" => ReadConsistency.Eventual,
            "read-your-writes" => ReadConsistency.ReadYourWrites,
            "strong" => ReadConsistency.Strong,
            _ => null,
        };
        await using var dataSource = tool.Settings(parse).CreateRoutingDataSource();
        var explanation = await output.ProgressAsync("Probing the endpoints...", async () =>
        {
            await dataSource.RefreshTopologyAsync(cancellationToken); // the decision depends on the replicas available now
            return await dataSource.ExplainAsync(sql, wanted, cancellationToken);
        });

        var c = explanation.Classification;
        var decision = explanation.Decision;
        var document = new ExplainDocument(
            new ClassificationDocument(c.Kind, c.SessionEffect, c.Hint, c.Functions, c.Detail),
            explanation.Kind,
            explanation.Consistency,
            decision.Target,
            decision.Target == RouteTarget.Replica ? decision.ReplicaIndex : null,
            explanation.Endpoint?.ToString(),
            decision.Reason,
            Describe(decision.Reason));
        if (output.IsJson)
        {
            output.WriteJson(document);
            return ExitCodes.Healthy;
        }

        var table = Output.Properties();
        Output.Row(table, "Classification", c.ToString());
        Output.Row(table, "Routed as", Lower(explanation.Kind));
        Output.Row(table, "Consistency", Lower(explanation.Consistency));
        Output.Row(table, "Target", decision.Target == RouteTarget.Replica ? $"replica[{decision.ReplicaIndex}]" : Lower(decision.Target));
        Output.Row(table, "Endpoint", document.Endpoint);
        Output.Row(table, "Reason", $"{Lower(decision.Reason)}: {document.Explanation}");
        output.Write(table);
        output.Line("Explained for a new connection that has not written yet, outside transactions and scopes; the statement was not run.");
        return ExitCodes.Healthy;
    }

    private static string Lower<T>(T value)
        where T : struct, Enum
        => System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(value.ToString());

    /// <summary>One sentence per routing reason.</summary>
    internal static string Describe(RoutingReason reason) => reason switch
    {
        RoutingReason.Read => "a read with nothing keeping it from a replica",
        RoutingReason.ReadOnlyProcedure => "a call of a procedure declared read-only",
        RoutingReason.ReplicaHint => "the text carries rwsplit:replica",
        RoutingReason.Write => "the statement writes",
        RoutingReason.UnknownStatement => "the classifier could not read the statement (fails closed to the primary)",
        RoutingReason.StoredProcedure => "a stored procedure not declared read-only",
        RoutingReason.VolatileFunction => "the read calls a function that may write (volatile, or not in the catalog)",
        RoutingReason.LearnedWrite => "a replica once rejected this text as a write",
        RoutingReason.MisrouteRetry => "the retry of a statement a replica rejected as a write",
        RoutingReason.LocalTransaction => "the connection has a local transaction",
        RoutingReason.AmbientTransaction => "an ambient transaction is active",
        RoutingReason.SessionState => "the statement creates session state that cannot be replayed: it pins the connection to the primary",
        RoutingReason.PinnedSession => "an earlier statement pinned the connection to the primary",
        RoutingReason.PrimaryHint => "the text carries rwsplit:primary",
        RoutingReason.CommandTarget => "the command's Target asks for the primary",
        RoutingReason.ForcePrimaryScope => "a ForcePrimary scope is active",
        RoutingReason.StrongConsistency => "strong consistency reads on the primary",
        RoutingReason.ReadYourWrites => "the session wrote and no replica is known to have replayed the write",
        RoutingReason.NoReplicaAvailable => "no replica is configured or available now",
        RoutingReason.WriteBlocked => "a PreventWrites scope refuses statements that may write",
        RoutingReason.CaughtUpReplica => "a replica known to have replayed the session's writes",
        RoutingReason.ReadAfterWrite => "the session wrote and its primary connection is open: the read runs there at once",
        RoutingReason.PrimaryCapacity => "a read the primary served because it had spare capacity (PrimaryReadWeight)",
        _ => reason.ToString(),
    };
}
