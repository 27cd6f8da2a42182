using System;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace RwSplit.WebApi;

/// <summary>
/// Carries RwSplit's read-your-writes guarantee across requests and instances: applies the tokens of the request's
/// <c>X-Consistency-Token</c> header to the request's session before the endpoint runs (a refused token is a 400, and
/// changes nothing), and returns the session's token in the same response header. A client that sends back the latest
/// token it got reads its own writes on any instance sharing the signing keys, although replicas lag.
/// </summary>
internal sealed partial class ConsistencyTokenMiddleware(RequestDelegate next, ILogger<ConsistencyTokenMiddleware> logger)
{
    public const string HeaderName = "X-Consistency-Token";

    // A header can carry a few tokens (e.g. from two earlier responses); more is not a client but an attempt at load.
    private const int MaxTokensPerRequest = 8;

    public async Task InvokeAsync(HttpContext context, RequestSession session)
    {
        var tokens = context.Request.Headers[HeaderName].ToString()
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (tokens.Length > MaxTokensPerRequest)
        {
            await RefuseAsync(context, $"At most {MaxTokensPerRequest} tokens per request.");
            return;
        }

        foreach (var token in tokens)
        {
            try
            {
                await session.ApplyConsistencyTokenAsync(token, context.RequestAborted);
            }
            catch (RwSplitException ex) when (ex.Error == RwSplitError.InvalidConsistencyToken)
            {
                LogTokenRefused(logger); // never the token itself, nor the exception's text
                await RefuseAsync(context, "The token is malformed, altered, signed with an unknown key, or of another database cluster.");
                return;
            }
        }

        context.Response.OnStarting(async () =>
        {
            // After the endpoint's writes, before the headers go out. A failure here (the primary unreachable while its
            // position is asked) costs the header, not the response: the client keeps its previous token.
            try
            {
                if (await session.GetConsistencyTokenAsync(context.RequestAborted) is { } token)
                    context.Response.Headers[HeaderName] = token;
            }
            catch (Exception ex) when (ex is RwSplitException or System.Data.Common.DbException or OperationCanceledException)
            {
                LogTokenUnavailable(logger, ex.GetType().Name);
            }
        });
        await next(context);
    }

    private static Task RefuseAsync(HttpContext context, string detail)
        => Results.Problem(title: $"Invalid {HeaderName} header", detail: detail, statusCode: StatusCodes.Status400BadRequest).ExecuteAsync(context);

    [LoggerMessage(1, LogLevel.Information, "A consistency token was refused")]
    private static partial void LogTokenRefused(ILogger logger);

    [LoggerMessage(2, LogLevel.Warning, "No consistency token for this response ({ErrorType})")]
    private static partial void LogTokenUnavailable(ILogger logger, string errorType);
}
