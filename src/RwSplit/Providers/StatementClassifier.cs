using System;
using System.Collections.Generic;
using RwSplit.Routing;

namespace RwSplit.Providers;

/// <summary>
/// How one engine's SQL is read for routing: command texts, stored procedure calls, and which functions can write. A
/// data source creates one with <see cref="RwSplitDialect.CreateClassifier"/> for its own read-only procedures and
/// caches what it returns per distinct text.
/// </summary>
public abstract class StatementClassifier
{
    /// <summary>Initializes the classifier.</summary>
    /// <param name="readOnlyProcedures">
    /// Procedure names the user declared read-only (<c>RwSplitOptions.ReadOnlyProcedures</c>; case-insensitive; with or
    /// without schema): a call of one of them is a read.
    /// </param>
    protected StatementClassifier(IReadOnlySet<string> readOnlyProcedures)
    {
        ArgumentNullException.ThrowIfNull(readOnlyProcedures);
        ReadOnlyProcedures = readOnlyProcedures;
    }

    /// <summary>Procedure names the user declared read-only.</summary>
    protected IReadOnlySet<string> ReadOnlyProcedures { get; }

    /// <summary>Classifies a command text. Called once per distinct text; the result is cached.</summary>
    /// <param name="commandText">The SQL text of a <see cref="System.Data.CommandType.Text"/> command.</param>
    /// <returns>The classification; <see cref="StatementClassification.Unreadable"/> when the text cannot be read.</returns>
    /// <remarks>Must never throw: text the classifier cannot read is <see cref="StatementKind.Unknown"/>.</remarks>
    public abstract StatementClassification Classify(string commandText);

    /// <summary>
    /// Classifies a call of a stored procedure (<see cref="System.Data.CommandType.StoredProcedure"/>). The default: a read
    /// when the name (with or without schema) is one of <see cref="ReadOnlyProcedures"/>, else a write.
    /// </summary>
    /// <param name="procedureName">The procedure name as given in the command text.</param>
    public virtual StatementClassification ClassifyProcedure(string procedureName)
    {
        ArgumentNullException.ThrowIfNull(procedureName);
        var name = procedureName.Trim();
        if (ReadOnlyProcedures.Contains(name))
            return StatementClassification.PlainRead;
        var dot = name.LastIndexOf('.');
        if (dot >= 0 && ReadOnlyProcedures.Contains(name[(dot + 1)..]))
            return StatementClassification.PlainRead;
        return new StatementClassification(StatementKind.Write, detail: "stored procedure");
    }

    /// <summary>
    /// For engines whose functions can write (PostgreSQL), a query listing the functions of the connected database: two
    /// columns, the lower-case unqualified name and its volatility code (<c>i</c> immutable, <c>s</c> stable,
    /// <c>v</c> volatile; for overloaded names, the most volatile). RwSplit runs it on the primary on first need and
    /// every <c>FunctionCatalogRefreshInterval</c>; a read calling a volatile or unlisted function goes to the primary.
    /// <see langword="null"/> (the default) when functions cannot write (SQL Server).
    /// </summary>
    public virtual string? FunctionCatalogQuery => null;

    /// <summary>
    /// Functions the engine marks volatile that nevertheless never write (<c>random()</c>, <c>clock_timestamp()</c>), so
    /// a read calling them may run on a replica. Lower-case names.
    /// </summary>
    public virtual IReadOnlyCollection<string> ReadOnlyVolatileFunctions => Array.Empty<string>();
}
