using System.Data.Common;
using Microsoft.Data.SqlClient;
using RwSplit.Topology;

namespace RwSplit.SqlServer;

/// <summary>Opens SqlClient connections to one endpoint (SqlClient pools per connection string).</summary>
internal sealed class SqlServerEndpointConnector : EndpointConnector
{
    private readonly string _connectionString;

    public SqlServerEndpointConnector(EndpointAddress address, EndpointRole role, string connectionString, string redacted)
        : base(address, role)
    {
        _connectionString = connectionString;
        RedactedConnectionString = redacted;
    }

    public override string RedactedConnectionString { get; }

    public override DbConnection CreateConnection() => new SqlConnection(_connectionString);

    /// <summary>
    /// SqlClient pools by connection string: the pool of <paramref name="connection"/>'s own string is cleared, whichever
    /// connector is asked.
    /// </summary>
    /// <param name="connection">A connection that failed.</param>
    public override bool ClearPool(DbConnection connection)
    {
        if (connection is not SqlConnection sql)
            return false;
        SqlConnection.ClearPool(sql);
        return true;
    }

    public override void ClearAllPools()
    {
        using var connection = new SqlConnection(_connectionString);
        SqlConnection.ClearPool(connection);
        using var monitor = (SqlConnection)CreateMonitorConnection();
        SqlConnection.ClearPool(monitor);
    }

    public override DbConnection CreateUnpooledConnection(string database)
        => new SqlConnection(new SqlConnectionStringBuilder(_connectionString) { InitialCatalog = database, Pooling = false }.ConnectionString);

    /// <summary>Another application name, hence another SqlClient pool.</summary>
    public override DbConnection CreateMonitorConnection()
    {
        var builder = new SqlConnectionStringBuilder(_connectionString);
        builder.ApplicationName = (string.IsNullOrEmpty(builder.ApplicationName) ? "" : builder.ApplicationName + " ") + "[rwsplit monitor]";
        builder.MaxPoolSize = 2;
        return new SqlConnection(builder.ConnectionString);
    }
}
