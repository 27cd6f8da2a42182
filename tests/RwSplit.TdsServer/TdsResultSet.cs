using System;
using System.Collections.Generic;

namespace RwSplit.Tds;

/// <summary>A result-set column: a name (may be empty, as for <c>SELECT 1</c>) and a type.</summary>
public sealed record TdsColumn(string Name, TdsType Type)
{
    public static TdsColumn Int(string name) => new(name, TdsType.Int);

    public static TdsColumn BigInt(string name) => new(name, TdsType.BigInt);

    public static TdsColumn Bit(string name) => new(name, TdsType.Bit);

    public static TdsColumn Float(string name) => new(name, TdsType.Float);

    public static TdsColumn NVarChar(string name, int maxLength = 4000) => new(name, TdsType.NVarChar(maxLength));

    public static TdsColumn DateTime2(string name, byte scale = 7) => new(name, TdsType.DateTime2(scale));

    public static TdsColumn Decimal(string name, byte precision = 18, byte scale = 0) => new(name, TdsType.Decimal(precision, scale));
}

/// <summary>
/// A result set to answer with: columns, then rows of CLR values (<see langword="null"/> or <see cref="DBNull"/> for
/// NULL). Values are encoded when the reply is sent; a value that does not fit its column is reported as a script error
/// and answered with an ERROR token.
/// </summary>
public sealed class TdsResultSet
{
    private readonly List<object?[]> _rows = [];

    public TdsResultSet(params TdsColumn[] columns)
    {
        ArgumentNullException.ThrowIfNull(columns);
        if (columns.Length == 0)
            throw new ArgumentException("A result set has at least one column.", nameof(columns));
        Columns = columns;
    }

    public IReadOnlyList<TdsColumn> Columns { get; }

    public IReadOnlyList<object?[]> Rows => _rows;

    /// <summary>Adds a row (one value per column) and returns this result set.</summary>
    public TdsResultSet Row(params object?[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Length != Columns.Count)
            throw new ArgumentException($"The row has {values.Length} values for {Columns.Count} columns.", nameof(values));
        _rows.Add((object?[])values.Clone());
        return this;
    }

    /// <summary>One unnamed column, one row: what <c>SELECT expression</c> returns.</summary>
    public static TdsResultSet Scalar(TdsType type, object? value) => new TdsResultSet(new TdsColumn("", type)).Row(value);
}
