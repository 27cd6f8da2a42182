namespace RwSplit.Routing;

/// <summary>Where a command is sent, or where a command asks to be sent.</summary>
public enum RouteTarget
{
    /// <summary>Let RwSplit decide (only meaningful as a request, see <see cref="RwSplitCommand.Target"/>).</summary>
    Auto = 0,

    /// <summary>The primary.</summary>
    Primary = 1,

    /// <summary>A replica.</summary>
    Replica = 2,

    /// <summary>Nowhere: the command was refused before it left the process.</summary>
    None = 3,
}
