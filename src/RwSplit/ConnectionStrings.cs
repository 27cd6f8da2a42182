using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Linq;

namespace RwSplit;

/// <summary>Connection-string handling every dialect shares.</summary>
internal static class ConnectionStrings
{
    // Normalized (lower case, no spaces or underscores): Password and its synonyms, and key passwords (Npgsql SSL Password).
    private static readonly HashSet<string> Secrets = new(StringComparer.Ordinal) { "password", "pwd", "psw", "sslpassword", "sslkeypassword" };

    /// <summary>
    /// <paramref name="connectionString"/> without passwords, as a provider reports its connection string once opened —
    /// unless it says <c>Persist Security Info=true</c>. A string that does not parse is returned as nothing.
    /// </summary>
    public static string WithoutSecrets(string connectionString)
    {
        DbConnectionStringBuilder builder;
        try
        {
            builder = new DbConnectionStringBuilder { ConnectionString = connectionString };
        }
        catch (ArgumentException)
        {
            return string.Empty;
        }

        var keys = builder.Keys.Cast<string>().ToList();
        var persist = keys.FirstOrDefault(k => Normalize(k) is "persistsecurityinfo");
        if (persist is not null && string.Equals(builder[persist]?.ToString(), "true", StringComparison.OrdinalIgnoreCase))
            return connectionString;
        foreach (var key in keys.Where(k => Secrets.Contains(Normalize(k))))
            builder.Remove(key);
        return builder.ConnectionString;
    }

    private static string Normalize(string key) => key.Replace(" ", "", StringComparison.Ordinal).Replace("_", "", StringComparison.Ordinal).ToLowerInvariant();
}
