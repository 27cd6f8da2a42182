using System;

namespace RwSplit.Topology;

/// <summary>
/// The identity of a database server and database, free of credentials: safe to log and to put in exceptions and
/// telemetry.
/// </summary>
public sealed class EndpointAddress : IEquatable<EndpointAddress>
{
    /// <summary>Creates an address.</summary>
    /// <param name="host">Host name or address.</param>
    /// <param name="port">TCP port, or <see langword="null"/> when the provider's default applies.</param>
    /// <param name="database">Database name, or <see langword="null"/> when the server's default applies.</param>
    public EndpointAddress(string host, int? port, string? database)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        Host = host;
        Port = port;
        Database = database;
    }

    /// <summary>Host name or address.</summary>
    public string Host { get; }

    /// <summary>TCP port, or <see langword="null"/> for the provider's default.</summary>
    public int? Port { get; }

    /// <summary>Database name, or <see langword="null"/> for the server's default.</summary>
    public string? Database { get; }

    /// <summary><c>host:port/database</c>.</summary>
    public override string ToString() => $"{Host}{(Port is null ? "" : ":" + Port.Value)}{(Database is null ? "" : "/" + Database)}";

    /// <inheritdoc />
    public bool Equals(EndpointAddress? other)
        => other is not null
           && string.Equals(Host, other.Host, StringComparison.OrdinalIgnoreCase)
           && Port == other.Port
           && string.Equals(Database, other.Database, StringComparison.Ordinal);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as EndpointAddress);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Host.ToUpperInvariant(), Port, Database);
}
