using System.Data.Common;
using System.Threading.Tasks;
using Npgsql;
using RwSplit.Topology;

namespace RwSplit.PostgreSql;

/// <summary>Opens Npgsql connections to one endpoint through an <see cref="NpgsqlDataSource"/> (one pool per endpoint).</summary>
internal sealed class NpgsqlEndpointConnector : EndpointConnector
{
    private readonly NpgsqlDataSource _dataSource;

    public NpgsqlEndpointConnector(EndpointAddress address, EndpointRole role, NpgsqlDataSource dataSource, string redacted)
        : base(address, role)
    {
        _dataSource = dataSource;
        RedactedConnectionString = redacted;
    }

    public override string RedactedConnectionString { get; }

    public override DbConnection CreateConnection() => _dataSource.CreateConnection();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            _dataSource.Dispose();
    }

    protected override ValueTask DisposeAsyncCore() => _dataSource.DisposeAsync();
}
