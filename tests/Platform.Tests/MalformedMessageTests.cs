using System.Text;
using AspireTune.TestSupport;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;

namespace AspireTune.Platform.Tests;

public sealed record ProbeCommand
{
    public required Guid Id { get; init; }
    public required string Text { get; init; }
}

public sealed class ProbeConsumer(Received<ProbeCommand> received) : IConsumer<ProbeCommand>
{
    public Task Consume(ConsumeContext<ProbeCommand> context)
    {
        received.Add(context.Message);
        return Task.CompletedTask;
    }
}

/// <summary>Bad messages on the real broker: each is set aside with its reason, and good ones keep flowing.</summary>
public sealed class MalformedMessageTests
{
    private const string ProbeType = "urn:message:AspireTune.Platform.Tests:ProbeCommand";

    [Fact]
    public async Task MalformedMessages_GoToErrorQueueWithReason_WhileGoodMessagesFlow()
    {
        var ct = TestContext.Current.CancellationToken;
        var queue = $"probe-{Guid.NewGuid():N}";
        var received = new Received<ProbeCommand>();
        await using var host = await MessagingHost.StartAsync("probe-host", TestInfrastructure.RabbitMq,
            bus => bus.AddConsumer<ProbeConsumer>().Endpoint(e => e.Name = queue),
            configure: b => b.Services.AddSingleton(received));

        var factory = new ConnectionFactory { Uri = new Uri(TestInfrastructure.RabbitMq) };
        await using var connection = await factory.CreateConnectionAsync(ct);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: ct);
        async Task Send(string body)
        {
            var props = new BasicProperties { ContentType = "application/vnd.masstransit+json", MessageId = Guid.NewGuid().ToString(), Persistent = true };
            await channel.BasicPublishAsync("", queue, false, props, Encoding.UTF8.GetBytes(body), ct);
        }

        await Send("{ this is not json");
        await Send(Envelope(ProbeType, """{"text":"no id"}"""));
        await Send(Envelope("urn:message:Nobody:Knows", """{"x":1}"""));
        var good = Guid.NewGuid();
        await Send(Envelope(ProbeType, $$"""{"id":"{{good}}","text":"fine"}"""));

        (await received.WaitAsync(m => m.Id == good, TimeSpan.FromSeconds(20))).Text.Should().Be("fine");

        var errors = await Drain(connection, $"{queue}_error", expected: 2, ct);
        errors.Should().HaveCount(2);
        errors.Should().OnlyContain(m => !string.IsNullOrEmpty(Header(m, "MT-Fault-Message")));
        var reasons = errors.Select(m => Header(m, "MT-Fault-Message")).ToList();
        reasons.Should().ContainMatch("*invalid start of a property name*").And.ContainMatch("*missing required properties*'id'*");
        var skipped = await Drain(connection, $"{queue}_skipped", expected: 1, ct);
        skipped.Should().ContainSingle();
        Header(skipped.Single(), "MT-Reason").Should().NotBeEmpty();
        received.Items.Should().ContainSingle();
    }

    private static string Envelope(string messageType, string message) =>
        $$"""{"messageId":"{{Guid.NewGuid()}}","messageType":["{{messageType}}"],"message":{{message}}}""";

    /// <summary>Reads up to <paramref name="expected"/> messages, waiting for MassTransit to create the queue.</summary>
    private static async Task<List<BasicGetResult>> Drain(IConnection connection, string queue, int expected, CancellationToken ct)
    {
        var found = new List<BasicGetResult>();
        for (var attempt = 0; attempt < 100 && found.Count < expected; attempt++)
        {
            // A missing queue closes the channel (404), so each attempt gets its own.
            await using var channel = await connection.CreateChannelAsync(cancellationToken: ct);
            try
            {
                while (found.Count < expected && await channel.BasicGetAsync(queue, autoAck: true, ct) is { } result)
                    found.Add(result);
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
            }
            if (found.Count < expected)
                await Task.Delay(100, ct);
        }
        return found;
    }

    private static string Header(BasicGetResult message, string name) =>
        message.BasicProperties.Headers?.TryGetValue(name, out var value) == true
            ? value switch { byte[] bytes => Encoding.UTF8.GetString(bytes), null => "", _ => value.ToString() ?? "" }
            : "";
}
