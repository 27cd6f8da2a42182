using System;
using System.Collections.Generic;
using System.Data.Common;
using System.Threading;
using System.Threading.Tasks;
using RwSplit.Routing;
using RwSplit.Topology;

namespace RwSplit;

/// <summary>
/// Everything RwSplit needs to know about one database engine and its ADO.NET provider: how to connect, how to
/// classify SQL text, and how the engine reports a write that reached a read-only server. Implemented by the provider
/// packages (<c>RwSplit.SqlServer</c>, <c>RwSplit.PostgreSql</c>); selected with <c>UseSqlServer()</c> /
/// <c>UseNpgsql()</c> on <c>RwSplitOptions</c>.
/// </summary>
public abstract class RwSplitDialect
{
    /// <summary>Initializes the dialect.</summary>
    protected RwSplitDialect()
    {
    }

    /// <summary>The OpenTelemetry <c>db.system.name</c> of the engine, such as <c>postgresql</c> or <c>microsoft.sql_server</c>.</summary>
    public abstract string SystemName { get; }

    /// <summary>The inner provider's factory, used to create the provider's own commands and parameters.</summary>
    public abstract DbProviderFactory ProviderFactory { get; }

    /// <summary>
    /// Parses and validates one provider connection string and returns the server it names, without connecting.
    /// </summary>
    /// <param name="connectionString">The provider connection string.</param>
    /// <returns>The endpoint's identity (host, port, database), free of secrets.</returns>
    /// <exception cref="ArgumentException">The connection string is malformed; the message names the fix and no secret.</exception>
    public abstract EndpointAddress ParseEndpoint(string connectionString);

    /// <summary>
    /// Creates the object that opens physical connections to one endpoint. Implementations force the provider not to
    /// enlist in ambient transactions by itself (<c>Enlist=false</c>): RwSplit enlists explicitly.
    /// </summary>
    /// <param name="connectionString">A connection string that <see cref="ParseEndpoint"/> accepted.</param>
    /// <param name="role">The role the endpoint is configured for.</param>
    public abstract EndpointConnector CreateConnector(string connectionString, EndpointRole role);

    /// <summary>Classifies a command text. Called once per distinct text; the result is cached.</summary>
    /// <param name="commandText">The SQL text of a <see cref="System.Data.CommandType.Text"/> command.</param>
    /// <returns>The classification; <see cref="StatementClassification.Unreadable"/> when the text cannot be read.</returns>
    public abstract StatementClassification Classify(string commandText);

    /// <summary>
    /// Whether the engine's functions can write, so that a read calling an unknown or volatile function must go to the
    /// primary. When <see langword="true"/>, RwSplit loads <see cref="LoadFunctionCatalogAsync"/> once and refreshes it.
    /// </summary>
    public virtual bool FunctionsCanWrite => false;

    /// <summary>
    /// Loads the volatility of every function of the connected database, keyed by lower-case unqualified name (for
    /// overloaded names, the most volatile overload).
    /// </summary>
    /// <param name="connection">An open physical connection.</param>
    /// <param name="cancellationToken">Cancels the load.</param>
    public virtual Task<IReadOnlyDictionary<string, FunctionVolatility>> LoadFunctionCatalogAsync(DbConnection connection, CancellationToken cancellationToken)
        => Task.FromResult<IReadOnlyDictionary<string, FunctionVolatility>>(new Dictionary<string, FunctionVolatility>());

    /// <summary>
    /// Functions the engine marks volatile that nevertheless never write (<c>random()</c>, <c>clock_timestamp()</c>), so
    /// a read calling them may run on a replica. Lower-case names.
    /// </summary>
    public virtual IReadOnlyCollection<string> ReadOnlyVolatileFunctions => Array.Empty<string>();

    /// <summary>
    /// Whether <paramref name="exception"/> says that the server refused a statement because it is read-only
    /// (PostgreSQL SQLSTATE 25006, SQL Server error 3906). Such a statement did nothing and can be retried on the primary.
    /// </summary>
    /// <param name="exception">The exception thrown by the provider.</param>
    public virtual bool IsReadOnlyViolation(Exception exception) => false;
}
