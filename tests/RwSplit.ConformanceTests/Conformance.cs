using System.Data.Common;
using System.Threading.Tasks;
using NUnit.Framework;

namespace RwSplit.ConformanceTests;

/// <summary>
/// The base of every conformance fixture: each fixture is instantiated once per <see cref="Provider"/>, so each test
/// body runs against Npgsql first (the oracle: a test that fails there is a wrong test) and against RwSplit.
/// </summary>
public abstract class Conformance
{
    protected Conformance(Provider provider)
    {
        Provider = provider;
        Factory = Providers.Factory(provider);
    }

    protected Provider Provider { get; }

    protected DbProviderFactory Factory { get; }

    protected string ConnectionString => Providers.ConnectionString(Provider);

    protected DbConnection CreateConnection()
    {
        var connection = Factory.CreateConnection()!;
        connection.ConnectionString = ConnectionString;
        return connection;
    }

    protected async Task<DbConnection> OpenAsync()
    {
        var connection = CreateConnection();
        await connection.OpenAsync();
        return connection;
    }

    protected static DbCommand Command(DbConnection connection, string text, DbTransaction? transaction = null)
    {
        var command = connection.CreateCommand();
        command.CommandText = text;
        command.Transaction = transaction;
        return command;
    }

    protected static DbParameter Parameter(DbCommand command, string name, object? value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value;
        command.Parameters.Add(parameter);
        return parameter;
    }

    [TearDown]
    public void NameTheProvider() => TestContext.Out.WriteLine($"provider: {Provider}");
}
