using System;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Npgsql;

namespace RwSplit.WebApi;

/// <summary>The body of <c>POST /notes</c>.</summary>
internal sealed record NoteInput(string? Text);

/// <summary>A note as the API returns it.</summary>
internal sealed record Note(long Id, string Text, DateTimeOffset CreatedAt);

/// <summary>
/// <c>POST /notes</c> writes (on the primary), <c>GET /notes/{id}</c> reads (on a replica that has replayed what the
/// session must see, else on the primary). Both tell in <c>X-RwSplit-Route</c> where their statement ran and why.
/// </summary>
internal static class Notes
{
    public const string RouteHeader = "X-RwSplit-Route";
    public const int MaxTextLength = 2000;

    public static IEndpointRouteBuilder MapNotes(this IEndpointRouteBuilder app)
    {
        app.MapPost("/notes", CreateAsync);
        app.MapGet("/notes/{id:long}", GetAsync);
        return app;
    }

    /// <summary>Creates the table once (the instances may start together: an advisory lock serializes them).</summary>
    public static async Task CreateSchemaAsync(RwSplitDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT pg_advisory_xact_lock(hashtext('rwsplit-webapi-schema'));
            CREATE TABLE IF NOT EXISTS notes (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                text text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now());
            """;
        await command.ExecuteNonQueryAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    private static async Task<IResult> CreateAsync(NoteInput input, RequestSession session, HttpContext context, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(input.Text) || input.Text.Length > MaxTextLength)
            return Results.ValidationProblem(new System.Collections.Generic.Dictionary<string, string[]> { ["text"] = [$"Required, at most {MaxTextLength} characters."] });

        var connection = await session.GetConnectionAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO notes (text) VALUES (@text) RETURNING id, created_at";
        command.Parameters.Add(new NpgsqlParameter("text", input.Text));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        var note = new Note(reader.GetInt64(0), input.Text, reader.GetFieldValue<DateTimeOffset>(1));
        TellRoute(context, command);
        return Results.Created($"/notes/{note.Id}", note);
    }

    private static async Task<IResult> GetAsync(long id, RequestSession session, HttpContext context, CancellationToken cancellationToken)
    {
        var connection = await session.GetConnectionAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT text, created_at FROM notes WHERE id = @id";
        command.Parameters.Add(new NpgsqlParameter("id", id));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        TellRoute(context, command);
        return await reader.ReadAsync(cancellationToken)
            ? Results.Ok(new Note(id, reader.GetString(0), reader.GetFieldValue<DateTimeOffset>(1)))
            : Results.NotFound();
    }

    // Role and reason only ("Replica; reason=CaughtUpReplica"): which server, by address, is for the logs.
    private static void TellRoute(HttpContext context, RwSplitCommand command)
    {
        if (command.LastDecision is { } decision)
            context.Response.Headers[RouteHeader] = $"{decision.Target}; reason={decision.Reason}";
    }
}
