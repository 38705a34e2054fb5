using static TorchSharp.torch;

namespace AspireTune.Engine.Generation;

/// <summary>
/// What one generation does to the logits before a token is picked: <c>logit_bias</c> added, then the
/// constraint's mask (disallowed tokens to -inf). Reported logprobs stay those of the unmodified distribution.
/// </summary>
internal sealed class LogitShaping : IDisposable
{
    private readonly ITokenConstraint? _constraint;
    private readonly Tensor? _bias;
    private readonly bool[]? _allowed;
    private readonly Device _device;

    public LogitShaping(GenerationOptions options, int vocabularySize, Device device)
    {
        _device = device;
        _constraint = options.Constraint?.Invoke();
        if (_constraint is not null)
            _allowed = new bool[vocabularySize];
        if (options.LogitBias is { Count: > 0 } bias)
        {
            var values = new float[vocabularySize];
            foreach (var (id, value) in bias)
                if ((uint)id < (uint)vocabularySize)
                    values[id] = (float)value;
            _bias = tensor(values, device: device);
        }
    }

    /// <summary>True when <see cref="Apply"/> changes the logits (a bias or a constraint).</summary>
    public bool ShapesLogits => _bias is not null || _constraint is not null;

    public bool IsComplete => _constraint?.IsComplete ?? false;

    /// <summary>The logits to pick from; the input itself when nothing shapes them.</summary>
    public Tensor Apply(Tensor logits)
    {
        if (_bias is not null)
            logits = logits + _bias;
        if (_constraint is null || _allowed is null)
            return logits;
        _constraint.Allowed(_allowed);
        if (!_allowed.Contains(true))
            throw new InvalidOperationException("the constraint allows no token here: the grammar cannot be continued with this vocabulary");
        using var allowed = tensor(_allowed, device: _device);
        return logits.masked_fill(allowed.logical_not(), float.NegativeInfinity);
    }

    public void Accept(int id) => _constraint?.Accept(id);

    public void Dispose() => _bias?.Dispose();
}
