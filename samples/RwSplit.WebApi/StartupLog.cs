using Microsoft.Extensions.Logging;

namespace RwSplit.WebApi;

internal static partial class StartupLog
{
    [LoggerMessage(100, LogLevel.Warning, "No RwSplit:TokenKeys configured: this instance signs consistency tokens with a random key of its own, so no other instance accepts them")]
    public static partial void NoSharedTokenKey(ILogger logger);
}
