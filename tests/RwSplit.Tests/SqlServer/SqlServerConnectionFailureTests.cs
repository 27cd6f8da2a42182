using System;
using System.Linq;
using System.Reflection;
using Microsoft.Data.SqlClient;
using NUnit.Framework;
using RwSplit.SqlServer;

namespace RwSplit.Tests.SqlServer;

/// <summary>
/// Which SqlClient failures let a read that returned no row yet be retried on another server. SqlClient's async path can
/// throw its transport-level error (severity 20) while the connection still reports itself open, so the severity
/// decides, not the state.
/// </summary>
public sealed class SqlServerConnectionFailureTests
{
    [TestCase(20, true)]
    [TestCase(25, true)]
    [TestCase(16, false)]
    [TestCase(14, false)]
    public void Severity_20_and_above_is_a_connection_failure_even_on_an_open_connection(int severity, bool expected)
    {
        using var connection = new FakeOpenConnection();
        var exception = CreateSqlException(0, (byte)severity, "A transport-level error has occurred when receiving results from the server.");
        Assert.That(SqlServerDialect.Instance.Failures.IsConnectionFailure(exception, connection), Is.EqualTo(expected));
    }

    [Test]
    public void A_closed_connection_is_a_failure_whatever_the_exception()
    {
        using var connection = new FakeOpenConnection { Closed = true };
        Assert.That(SqlServerDialect.Instance.Failures.IsConnectionFailure(new InvalidOperationException(), connection), Is.True);
    }

    /// <summary>SqlException has no public constructor: build one as SqlClient does (internal API of the pinned version).</summary>
    private static SqlException CreateSqlException(int number, byte severity, string message)
    {
        const BindingFlags flags = BindingFlags.NonPublic | BindingFlags.Instance;
        var errorConstructor = typeof(SqlError).GetConstructors(flags)
            .First(c => c.GetParameters().Select(p => p.ParameterType).SequenceEqual(
                [typeof(int), typeof(byte), typeof(byte), typeof(string), typeof(string), typeof(string), typeof(int), typeof(Exception)]));
        var error = (SqlError)errorConstructor.Invoke([number, (byte)0, severity, "server", message, "", 0, null]);
        var errors = (SqlErrorCollection)typeof(SqlErrorCollection).GetConstructor(flags, Type.EmptyTypes)!.Invoke(null);
        typeof(SqlErrorCollection).GetMethod("Add", flags)!.Invoke(errors, [error]);
        var create = typeof(SqlException).GetMethod("CreateException", BindingFlags.NonPublic | BindingFlags.Static, [typeof(SqlErrorCollection), typeof(string)])!;
        return (SqlException)create.Invoke(null, [errors, "16.00.1000"])!;
    }

    private sealed class FakeOpenConnection : System.Data.Common.DbConnection
    {
        public bool Closed { get; init; }

        [System.Diagnostics.CodeAnalysis.AllowNull]
        public override string ConnectionString { get; set; } = "";

        public override string Database => "";

        public override string DataSource => "";

        public override string ServerVersion => "";

        public override System.Data.ConnectionState State => Closed ? System.Data.ConnectionState.Closed : System.Data.ConnectionState.Open;

        public override void ChangeDatabase(string databaseName) => throw new NotSupportedException();

        public override void Close()
        {
        }

        public override void Open()
        {
        }

        protected override System.Data.Common.DbTransaction BeginDbTransaction(System.Data.IsolationLevel isolationLevel) => throw new NotSupportedException();

        protected override System.Data.Common.DbCommand CreateDbCommand() => throw new NotSupportedException();
    }
}
