namespace RwSplit.Tool;

internal static class Program
{
    private static int Main() => 3; // the commands are built in the tool's own change
}
