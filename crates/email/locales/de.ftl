# Die E-Mails des Dienstes, auf Deutsch.

greeting = Hallo { $username },
code-validity = Geben Sie ihn auf der Seite ein, die danach gefragt hat. Er gilt einmal, innerhalb der nächsten Stunde.
code-mistake = Wenn Sie das nicht angefordert haben, hat jemand Ihre Adresse versehentlich eingegeben: Sie können diese Nachricht ignorieren.

verification-subject = Ihr Code für { $service }: { $code }
verification-intro = Ihr Code, um diese Adresse Ihrem Konto bei { $service } hinzuzufügen, lautet:

registration-subject = Ihr Code für { $service }: { $code }
registration-intro = Ihr Code, um die Erstellung Ihres Kontos bei { $service } abzuschließen, lautet:
registration-mistake = Wenn Sie das nicht angefordert haben, hat jemand Ihre Adresse versehentlich eingegeben: Sie können diese Nachricht ignorieren, und es wird kein Konto erstellt.

recovery-subject = Ein neues Passwort für { $service } festlegen
recovery-intro = Jemand hat angefragt, ein neues Passwort für Ihr Konto bei { $service } festzulegen. Um eines zu wählen, öffnen Sie diesen Link:
recovery-validity = { $minutes ->
    [one] Er gilt einmal, innerhalb der nächsten Minute.
   *[other] Er gilt einmal, innerhalb der nächsten { $minutes } Minuten.
}
recovery-mistake = Wenn Sie das nicht angefordert haben, können Sie diese Nachricht ignorieren: Ihr Passwort bleibt, wie es ist.

test-subject = Testnachricht von { $service }
test-intro = Dies ist eine Testnachricht von { $service }, gesendet von `mas-cli doctor --send-test-email`.
test-outro = Wenn Sie sie lesen können, erreicht die E-Mail des Dienstes diese Adresse.
