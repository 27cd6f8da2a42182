using System;
using System.CommandLine;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using RwSplit.Routing;

namespace RwSplit.Tool;

/// <summary><c>rwsplit token decode &lt;token&gt;</c>: a consistency token's fields, and whether it verifies with the keys given.</summary>
internal static class TokenCommand
{
    internal sealed record TokenDocument(string Version, string IdentityHash, long Position, DateTimeOffset WrittenAt, double AgeSeconds, string KeyId, string Signature);

    public static Command Create(Tool tool)
    {
        var token = new Argument<string>("token") { Description = "The token (rws2....), as GetConsistencyToken returned it." };
        var keysFile = new Option<FileInfo?>("--keys-file") { Description = "A file with the consistency token keys, base64, one a line (else RWSPLIT_TOKEN_KEYS or the settings file's consistencyTokenKeys). Keys are never printed." };
        var decode = new Command("decode", "A token's fields; with keys, whether it verifies. Exit code 1 when keys are given and none verifies it, 3 when it is malformed.");
        decode.Arguments.Add(token);
        decode.Options.Add(keysFile);
        decode.SetAction(tool.Guard((parse, output, _) => Task.FromResult(Run(tool, parse, output, parse.GetRequiredValue(token), parse.GetValue(keysFile)))));
        var command = new Command("token", "Consistency tokens.");
        command.Subcommands.Add(decode);
        return command;
    }

    private static int Run(Tool tool, ParseResult parse, Output output, string text, FileInfo? keysFile)
    {
        ConsistencyToken parsed;
        try
        {
            parsed = ConsistencyToken.Parse(text.Trim());
        }
        catch (RwSplitException ex)
        {
            throw new UsageException(ex.Message);
        }

        var keys = keysFile is null
            ? tool.Settings(parse).TokenKeys
            : File.ReadAllLines(keysFile.FullName).Where(l => l.Trim().Length > 0).Select(ParseKey).ToList();
        var signature = keys.Count == 0 ? "not_checked"
            : keys.Any(parsed.IsSignedBy) ? "valid"
            : keys.Any(k => ConsistencyTokenKeyId(k) == parsed.KeyId) ? "invalid"
            : "unknown_key";
        var document = new TokenDocument(
            "rws2",
            parsed.IdentityHash.ToString("x16", CultureInfo.InvariantCulture),
            parsed.Position,
            parsed.WrittenAt,
            Output.Round((DateTimeOffset.UtcNow - parsed.WrittenAt).TotalSeconds, 1),
            parsed.KeyId.ToString("x8", CultureInfo.InvariantCulture),
            signature);
        var exitCode = signature is "valid" or "not_checked" ? ExitCodes.Healthy : ExitCodes.Degraded;
        if (output.IsJson)
        {
            output.WriteJson(document);
            return exitCode;
        }

        var table = Output.Properties();
        Output.Row(table, "Version", document.Version);
        Output.Row(table, "Replica set identity (hash)", document.IdentityHash);
        Output.Row(table, "Position", document.Position < 0 ? "none (time only)" : document.Position.ToString(CultureInfo.InvariantCulture));
        Output.Row(table, "Written at", document.WrittenAt.ToString("O", CultureInfo.InvariantCulture) + $" ({Output.Age(TimeSpan.FromSeconds(Math.Max(0, document.AgeSeconds)))} ago)");
        Output.Row(table, "Key id", document.KeyId);
        Output.Row(table, "Signature", signature switch
        {
            "valid" => "valid: signed by one of the keys given",
            "invalid" => "INVALID: the key it names is given, but the signature does not match (forged or altered)",
            "unknown_key" => "not verified: signed by a key not given (another service's, or a retired one)",
            _ => "not checked (no keys given)",
        });
        output.Write(table);
        return exitCode;
    }

    private static byte[] ParseKey(string line)
    {
        try
        {
            return Convert.FromBase64String(line.Trim());
        }
        catch (FormatException)
        {
            throw new UsageException("A line of the keys file is not base64 (it is not shown).");
        }
    }

    /// <summary>A key's id as tokens name it: the first 4 bytes of its SHA-256.</summary>
    private static uint ConsistencyTokenKeyId(byte[] key)
        => System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(System.Security.Cryptography.SHA256.HashData(key));
}
