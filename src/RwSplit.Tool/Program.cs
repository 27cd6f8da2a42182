using System;
using System.Threading.Tasks;

namespace RwSplit.Tool;

internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        var parse = new Tool().CreateRoot().Parse(args);
        if (parse.Errors.Count > 0)
        {
            // Usage errors exit with 3 (System.CommandLine's own code would be 1, which means "degraded" here).
            foreach (var error in parse.Errors)
                Output.Error(error.Message);
            Console.Error.WriteLine("Run 'rwsplit --help' (or 'rwsplit <command> --help') for usage.");
            return ExitCodes.UsageOrConnectionError;
        }

        return await parse.InvokeAsync();
    }
}
